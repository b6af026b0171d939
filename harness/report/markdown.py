"""``report.md``: a report to paste into a pull request or a CI job summary.

Server-supplied text (messages, evidence) is escaped: GitHub and GitLab render inline HTML, and a
message is whatever the server under test chose to send.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any
from urllib.parse import quote

from harness.core.findings import FAIL, LEVELS, PASS, SKIP, UNSUPPORTED
from harness.report import clients_table
from harness.report.summary_json import (
    failures,
    results_by_scenario,
    scenario_totals,
    scenarios,
    status_reason,
    verdict,
    where,
)


def _md(text: Any) -> str:
    """Plain text that Markdown shows as written, on one line (safe inside a table cell)."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # `$` too: GitHub reads `$...$` as math, and JSON paths start with `$`.
    return re.sub(r"([\\`*_~\[\]|#!$])", r"\\\1", text)


def _code(text: Any) -> str:
    """Inline code with a fence longer than any backtick run inside (CommonMark 6.1)."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _link(path: str) -> str:
    return f"[{_md(path)}]({quote(path)})"


def render(summary: dict[str, Any]) -> str:
    target = summary.get("target") or {}
    ok, line = verdict(summary)
    if not summary.get("results") and clients_table.verdict(summary):
        ok, line = clients_table.verdict(summary)  # `respcheck clients`: no scenario was run
    totals = summary.get("totals") or Counter(r.get("status") for r in summary.get("results", []))
    st = scenario_totals(summary)
    statuses = (PASS, FAIL, UNSUPPORTED, SKIP)
    out = [
        f"# Responses API conformance: {_md(target.get('name', 'target'))}",
        "",
        f"- Target: {_md(target.get('name', '?'))} at {_code(target.get('base_url', '?'))}, "
        f"model {_code(target.get('model', '?'))}",
        f"- Profile: {_md(summary.get('profile', '?'))}",
        f"- Started: {_md(summary.get('started_at', '?'))}, "
        f"duration {float(summary.get('duration_s') or 0):.1f} s",
        f"- Tool: {_md(summary.get('tool', 'respcheck'))} {_md(summary.get('version', ''))}",
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {_md(line.split(': ', 1)[1])}.",
        "",
        "Checks: " + ", ".join(f"{totals.get(s, 0)} {s}" for s in statuses) + ".  ",
        "Scenarios: " + ", ".join(f"{st.get(s, 0)} {s}" for s in statuses) + ".",
    ]

    out += clients_table.markdown_section(summary)

    # One table per feature (the check's feature, from the catalogue): how many scenarios each
    # check passed and failed in. A row is a check at one level: the level is the result's, not
    # the catalogue's, because a scenario may lower its own expectation checks (``errors.status``
    # is SHOULD in errors/metadata_too_many_keys) and a profile may raise a check. A check judged
    # at two levels gets two rows, so a SHOULD failure is never counted under MUST.
    by_check: dict[str, dict[tuple[str, str], Counter[str]]] = {}
    for r in summary.get("results", []):
        key = (r["check"], r.get("level") or "?")
        by_check.setdefault(r.get("feature") or "other", {}).setdefault(key, Counter())[r.get("status")] += 1
    rank = {level: i for i, level in enumerate(LEVELS)}
    for feature, checks in by_check.items():
        out += ["", f"## {_md(feature)}", "",
                "| check | level | scenarios passed | failed | unsupported | skipped |",
                "|---|---|--:|--:|--:|--:|"]
        for check, level in sorted(checks, key=lambda k: (rank.get(k[1], 9), k[0])):
            c = checks[check, level]
            failed = f"**{c[FAIL]}**" if c[FAIL] else "0"
            out.append(f"| {_code(check)} | {_md(level)} | {c[PASS]} | {failed} | "
                       f"{c[UNSUPPORTED]} | {c[SKIP]} |")

    # Scenarios that produced no check (refused, not run, crashed) are listed so none vanish.
    results = results_by_scenario(summary)
    quiet = [s for s in scenarios(summary) if s.get("status") != PASS and not any(
        r.get("status") == FAIL for r in results.get(s["id"], []))]
    if quiet:
        out += ["", "## Unsupported, skipped and errored scenarios", ""]
        for s in quiet:
            why = status_reason(s, results.get(s["id"], []))
            reason = f": {_md(why)}" if why else ""
            link = f" ({_link(s['transcript'])})" if s.get("transcript") else ""
            out.append(f"- {s.get('status', '?')} {_code(s['id'])}{reason}{link}")

    failed = failures(summary)
    if failed:
        out += ["", "## Failures", ""]
        for r in failed:
            at = where(r.get("evidence"))
            out.append(f"- **{r.get('level', '?')}** {_code(r['check'])} in {_code(r['scenario'])}"
                       f"{' at ' + _md(at) if at else ''}: {_md(r.get('message') or '(no message)')}")
            if r.get("evidence"):
                out.append(f"  - evidence: {_code(json.dumps(r['evidence'], ensure_ascii=False, default=str))}")
            if r.get("transcript"):
                out.append(f"  - transcript: {_link(r['transcript'])}")
    return "\n".join(out) + "\n"
