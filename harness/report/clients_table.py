"""The real clients' results (summary.json's ``clients``, harness/run/clients.py) as report
sections: one table in report.html and report.md (a row per client: version, each step, the
first error in the client's own words), and one in the comparison page, where each client is a
column group (its steps and verdict) and each run a row.

Every string is escaped: an error is whatever the client printed about what the server sent.
"""

from __future__ import annotations

import html
from typing import Any

from harness.core.findings import FAIL, PASS, SKIP

STEPS = ("text", "tool", "follow_up")
_MARK = {PASS: "✓", FAIL: "✗", SKIP: "–"}
# The HTML classes the report pages already style (pass green, fail red, skip grey).
_CLASS = {PASS: "pass", FAIL: "fail", SKIP: "skip"}


def entries(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in summary.get("clients") or [] if isinstance(e, dict)]


def verdict(summary: dict[str, Any]) -> tuple[bool, str] | None:
    """(passed, line) of the clients of a run, or None when it drove none. A client that was
    skipped (not installed) does not fail the run, and does not pass it either: it is counted."""
    items = entries(summary)
    if not items:
        return None
    n = {s: sum(1 for e in items if e.get("status") == s) for s in (PASS, FAIL, SKIP)}
    first = next((e for e in items if e.get("status") == FAIL), None)
    counts = f"{n[PASS]} pass, {n[FAIL]} fail, {n[SKIP]} skip"
    if first is None:
        return True, f"PASS: clients {counts}"
    return False, f"FAIL: clients {counts}; first {first.get('client')}: {first.get('error') or ''}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _step(entry: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in entry.get("steps") or [] if s.get("step") == name),
                {"step": name, "status": SKIP, "error": None})


def html_section(summary: dict[str, Any]) -> str:
    """The "Real clients" section of report.html ('' when the run drove none)."""
    items = entries(summary)
    if not items:
        return ""
    rows = []
    for e in items:
        cells = "".join(
            f'<td class="c {_CLASS.get(s["status"], "skip")}" title="{_e(s.get("error") or s["status"])}">'
            f'{_MARK.get(s["status"], s["status"])}</td>' for s in (_step(e, n) for n in STEPS))
        st = e.get("status", SKIP)
        rows.append(f'<tr><th scope="row">{_e(e.get("client"))}<br><small>{_e(e.get("title", ""))}'
                    f'</small></th><td><code>{_e(e.get("version") or "-")}</code></td>{cells}'
                    f'<td class="c {_CLASS.get(st, "skip")}">{_e(st)}</td>'
                    f'<td><code style="white-space:pre-wrap;overflow-wrap:anywhere">'
                    f'{_e(e.get("error") or "")}</code></td></tr>')
    return ('<section id="clients"><h2>Real clients<small>harness/run/clients.py: a text turn, '
            'a tool round and a follow-up with each pinned client</small></h2>'
            '<div class="scroll"><table class="matrix"><thead><tr><th>client</th><th>version</th>'
            + "".join(f"<th>{n}</th>" for n in STEPS)
            + '<th>verdict</th><th>first error (the client\'s own)</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div></section>")


def _md(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_section(summary: dict[str, Any]) -> list[str]:
    """The "Real clients" lines of report.md ([] when the run drove none)."""
    items = entries(summary)
    if not items:
        return []
    out = ["", "## Real clients", "",
           "| client | version | " + " | ".join(STEPS) + " | verdict | first error |",
           "|---|---|" + ":-:|" * len(STEPS) + "---|---|"]
    for e in items:
        marks = " | ".join(_MARK.get(_step(e, n)["status"], "?") for n in STEPS)
        err = f"`{_md(e['error'])}`" if e.get("error") else ""
        out.append(f"| {_md(e.get('client'))} | {_md(e.get('version') or '-')} | {marks} | "
                   f"**{_md(e.get('status'))}** | {err} |")
    return out


def compared_clients(summaries: list[dict[str, Any]]) -> list[str]:
    """The client names any of the runs drove, in the order they first appear."""
    names: list[str] = []
    for s in summaries:
        for e in entries(s):
            if e.get("client") not in names:
                names.append(e.get("client"))
    return names


def comparison_html(labels: list[str], summaries: list[dict[str, Any]]) -> str:
    """The comparison page's clients table: a column group per client (its steps and verdict),
    a row per run ('' when no run drove a client)."""
    names = compared_clients(summaries)
    if not names:
        return ""
    groups = "".join(f'<th colspan="{len(STEPS) + 1}" class="t">{_e(n)}</th>' for n in names)
    sub = "".join("".join(f"<th>{s}</th>" for s in STEPS) + "<th>verdict</th>" for _ in names)
    rows = []
    for label, summary in zip(labels, summaries):
        by_name = {e.get("client"): e for e in entries(summary)}
        cells = []
        for n in names:
            e = by_name.get(n)
            if e is None:
                cells.append(f'<td class="c none" colspan="{len(STEPS) + 1}">not run</td>')
                continue
            for s in (_step(e, x) for x in STEPS):
                cells.append(f'<td class="c {_CLASS.get(s["status"], "skip")}" '
                             f'title="{_e(n)} {_e(s["step"])}: {_e(s.get("error") or s["status"])}">'
                             f'{_MARK.get(s["status"], s["status"])}</td>')
            st = e.get("status", SKIP)
            cells.append(f'<td class="c {_CLASS.get(st, "skip")}" title="{_e(e.get("error") or st)}">'
                         f'{_e(st)}<br><small>{_e(e.get("version") or "")}</small></td>')
        rows.append(f'<tr><th scope="row">{_e(label)}</th>{"".join(cells)}</tr>')
    errors = [f"<li><b>{_e(label)}</b> · {_e(e.get('client'))}: <code>{_e(e['error'])}</code></li>"
              for label, summary in zip(labels, summaries) for e in entries(summary)
              if e.get("error")]
    return ('<section id="clients"><h2>Real clients<small>each client a column group: its text '
            'turn, tool round, follow-up and verdict on each target (hover for the error)'
            '</small></h2><div class="scroll"><table class="matrix"><thead>'
            f'<tr><th rowspan="2">target</th>{groups}</tr><tr>{sub}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>'
            + (f'<ul class="client-errors">{"".join(errors)}</ul>' if errors else "")
            + "</section>")


def comparison_markdown(labels: list[str], summaries: list[dict[str, Any]]) -> list[str]:
    """The comparison.md lines for the clients: a column per (client, step) plus verdict."""
    names = compared_clients(summaries)
    if not names:
        return []
    head = [f"{n} {s}" for n in names for s in (*STEPS, "verdict")]
    out = ["", "## Real clients", "", "| target | " + " | ".join(head) + " |",
           "|---|" + ":-:|" * len(head)]
    errors = []
    for label, summary in zip(labels, summaries):
        by_name = {e.get("client"): e for e in entries(summary)}
        cells = []
        for n in names:
            e = by_name.get(n)
            if e is None:
                cells += ["—"] * (len(STEPS) + 1)
                continue
            cells += [_MARK.get(_step(e, s)["status"], "?") for s in STEPS]
            cells.append(f"**{_md(e.get('status'))}**")
            if e.get("error"):
                errors.append(f"- {_md(label)} · {_md(n)}: `{_md(e['error'])}`")
        out.append(f"| {_md(label)} | " + " | ".join(cells) + " |")
    return out + ([""] + errors if errors else [])
