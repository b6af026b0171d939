"""The summary printed at the end of ``respcheck run``: per-feature counts, failures, verdict."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from harness.core.findings import FAIL, MAY, MUST, PASS, SHOULD, SKIP, UNSUPPORTED
from harness.report.summary_json import (
    by_feature,
    failures,
    results_by_scenario,
    scenarios,
    status_reason,
    verdict,
    where,
)

_SGR = {PASS: "32", FAIL: "31", UNSUPPORTED: "33", SKIP: "2", MUST: "1;31", SHOULD: "33",
        MAY: "36", "head": "1", "ok": "1;32", "bad": "1;41;97"}
_COLUMNS = ((PASS, "pass"), (FAIL, "fail"), (UNSUPPORTED, "unsup"), (SKIP, "skip"))


def _printable(text: Any) -> str:
    """One line, with no control characters: a server's message must not drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text).replace("\n", " "))


# A reason shared by more scenarios than this is told with a count, not a list of ids
# (``--only core`` skips most of the suite for one reason).
_SKIP_IDS_LISTED = 3


def _skip_lines(summary: dict[str, Any], paint: Callable[[str, str], str]) -> list[str]:
    """One line per reason a scenario was skipped, naming the scenarios (or counting them)."""
    results = results_by_scenario(summary)
    by_reason: dict[str, list[str]] = {}
    for s in scenarios(summary):
        if s.get("status") == SKIP:
            why = status_reason(s, results.get(s["id"], [])) or "no reason recorded"
            by_reason.setdefault(why, []).append(s["id"])
    lines = []
    for why, ids in by_reason.items():
        named = (", ".join(ids) if len(ids) <= _SKIP_IDS_LISTED
                 else f"{len(ids)} scenarios")
        lines.append(f"{paint(SKIP, 'skip')}  {_printable(named)}: {_printable(why)}")
    return ([""] + lines) if lines else []


def console_table(summary: dict[str, Any], *, color: bool) -> str:
    def paint(key: str, text: str) -> str:
        return f"\x1b[{_SGR[key]}m{text}\x1b[0m" if color and key in _SGR else text

    groups = {f: Counter(s.get("status") for s in ss) for f, ss in by_feature(scenarios(summary)).items()}
    total = sum(groups.values(), Counter())
    w = max([len("feature")] + [len(_printable(f)) for f in groups])
    lines = [paint("head", f"{'feature':<{w}}  " + " ".join(f"{h:>5}" for _, h in _COLUMNS))]
    for name, counts in [*groups.items(), ("total", total)]:
        cells = [paint(st, f"{counts[st]:>5}") if counts[st] else f"{0:>5}" for st, _ in _COLUMNS]
        lines.append(f"{_printable(name):<{w}}  " + " ".join(cells))

    lines += _skip_lines(summary, paint)

    failed = failures(summary)
    # A scenario that failed without a failed check (it crashed, timed out) still gets a line.
    named = {r["scenario"] for r in failed}
    errored = [s for s in scenarios(summary)
               if s.get("status") == FAIL and s.get("error") and s["id"] not in named]
    if failed or errored:
        lines.append("")
    if failed:
        cw = min(40, max(len(_printable(r["check"])) for r in failed))
        sw = min(40, max(len(_printable(r["scenario"])) for r in failed))
        for r in failed:
            at, msg = where(r.get("evidence")), r.get("message") or ""
            detail = f"{at}: {msg}" if at and msg else at or msg
            level = r.get("level") or "?"
            lines.append(f"{paint(FAIL, 'FAIL')} {paint(level, f'{level:<6}')} "
                         f"{_printable(r['check']):<{cw}}  {_printable(r['scenario']):<{sw}}  "
                         f"{_printable(detail)}".rstrip())
    for s in errored:
        lines.append(f"{paint(FAIL, 'ERROR')}       {_printable(s['id'])}  "
                     f"{_printable(s['error'])}")
    ok, line = verdict(summary)
    lines += ["", paint("ok" if ok else "bad", _printable(line))]
    return "\n".join(lines)
