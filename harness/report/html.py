"""``report.html``: one self-contained page (inline CSS and JS, no network) that opens from disk.

A matrix per feature: scenarios are rows, the checks judged on them are columns. Each failed check
expands to its message, level, evidence and a link to the transcript. Every piece of text is
escaped: messages and evidence are whatever the server under test sent.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from harness.core.findings import FAIL, LEVELS, MUST, PASS, SKIP, UNSUPPORTED
from harness.report import clients_table
from harness.report.summary_json import (
    by_feature,
    joined_levels,
    results_by_scenario,
    scenario_totals,
    scenarios,
    status_reason,
    verdict,
    where,
)

_STATUSES = (PASS, FAIL, UNSUPPORTED, SKIP)
_MARK = {PASS: "✓", FAIL: "✗", UNSUPPORTED: "⊘", SKIP: "–"}
_WORST = (FAIL, UNSUPPORTED, PASS, SKIP)  # a check judged twice in one scenario shows its worst

_CSS = """
:root{color-scheme:light;--pass:#1a7f37;--fail:#cf222e;--unsupported:#9a6700;--skip:#6e7781;
--line:#d0d7de;--soft:#f6f8fa;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328}
body{margin:0 auto;padding:24px;max-width:1400px;background:#fff}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
a{color:#0969da}
header{display:flex;gap:24px;align-items:center;border-bottom:1px solid var(--line);padding-bottom:16px}
h1{margin:0 0 6px;font-size:24px} h2{font-size:18px;margin:28px 0 8px}
h2 small{font-weight:400;color:var(--skip);font-size:14px;margin-left:8px}
.verdict{min-width:150px;padding:14px 22px;border-radius:12px;color:#fff;text-align:center;
font-size:34px;font-weight:800;letter-spacing:.04em}
.verdict small{display:block;font-size:13px;font-weight:500;letter-spacing:0;opacity:.95}
.verdict.pass{background:var(--pass)} .verdict.fail{background:var(--fail)}
.meta dl{display:grid;grid-template-columns:auto 1fr;gap:2px 14px;margin:0}
.meta dt{color:var(--skip)} .meta dd{margin:0}
.totals{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:16px 0}
.totals .label{color:var(--skip);margin-right:2px;min-width:80px}
.pill{display:inline-block;padding:3px 12px;border-radius:999px;color:#fff;font-weight:600}
.pill.zero{background:var(--soft)!important;color:var(--skip);font-weight:400}
.pass.pill,.badge.pass{background:var(--pass)} .fail.pill,.badge.fail{background:var(--fail)}
.unsupported.pill,.badge.unsupported{background:var(--unsupported)} .skip.pill,.badge.skip{background:var(--skip)}
.badge{display:inline-block;padding:1px 8px;border-radius:6px;color:#fff;font-size:12px;font-weight:600}
nav.filters{display:flex;gap:6px;align-items:center;margin:12px 0}
nav.filters button{font:inherit;padding:4px 14px;border:1px solid var(--line);border-radius:6px;
background:#fff;cursor:pointer} nav.filters button[aria-pressed=true]{background:#1f2328;color:#fff}
nav.filters[hidden]{display:none}
.legend{color:var(--skip);font-size:13px;margin-left:auto}
.scroll{overflow-x:auto}
table.matrix{border-collapse:collapse;font-size:14px}
.matrix th,.matrix td{border:1px solid var(--line);padding:4px 8px;vertical-align:top}
.matrix thead th{background:var(--soft);vertical-align:bottom;text-align:left}
.matrix th.check{padding:6px 2px;min-width:26px}
.matrix th.check span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-weight:500}
.matrix th[scope=row]{text-align:left;font-weight:400;min-width:260px}
.matrix .title{color:var(--skip);font-size:13px} .matrix .tx{font-size:12px;margin-left:6px}
td.c{text-align:center;font-weight:700;padding:4px 2px} td.c a{color:inherit;text-decoration:none}
td.c.pass{color:var(--pass)} td.c.fail{color:#fff;background:var(--fail)}
td.c.fail.advisory{color:var(--fail);background:#ffebe9}
td.c.unsupported{color:var(--unsupported)} td.c.skip{color:var(--skip)}
tr.findings td{background:#fff8f8;padding:6px 10px}
details.finding{margin:4px 0;border-left:4px solid var(--fail);padding:2px 10px;background:#fff}
details.finding.SHOULD{border-color:var(--unsupported)} details.finding.MAY{border-color:var(--skip)}
details.finding summary{cursor:pointer} details.finding dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px}
details.finding dt{color:var(--skip)} details.finding dd{margin:0}
.lvl{font-weight:700;font-size:12px} .lvl.MUST{color:var(--fail)} .lvl.SHOULD{color:var(--unsupported)}
.lvl.MAY{color:var(--skip)} .where{color:var(--skip)}
pre{background:var(--soft);padding:8px 10px;border-radius:6px;white-space:pre-wrap;word-break:break-word;margin:4px 0}
.error{color:var(--fail);margin:4px 0} .reason{color:var(--skip);margin:4px 0}
.none{display:none;color:var(--skip);font-style:italic}
body[data-filter=fail] .grp:not([data-fail]),body[data-filter=must] .grp:not([data-must]),
body[data-filter=must] .finding:not(.MUST){display:none}
body[data-filter=fail] .none.fail,body[data-filter=must] .none.must{display:block}
footer{margin-top:32px;color:var(--skip);font-size:12px}
@media print{body{padding:0;max-width:none;font-size:11px}nav.filters{display:none}.scroll{overflow:visible}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}tr,details{break-inside:avoid}}
"""

# The filter buttons (also used by the comparison page, compare_html.py).
FILTER_JS = """
const nav = document.querySelector('nav.filters'), buttons = nav.querySelectorAll('button');
nav.hidden = false;
for (const b of buttons) b.addEventListener('click', () => {
  document.body.dataset.filter = b.dataset.f;
  for (const o of buttons) o.setAttribute('aria-pressed', String(o === b));
});
"""

_JS = FILTER_JS + """
const openTarget = () => {
  const d = location.hash && document.getElementById(location.hash.slice(1));
  if (d && d.tagName === 'DETAILS') d.open = true;
};
addEventListener('hashchange', openTarget); openTarget();
addEventListener('beforeprint', () => document.querySelectorAll('details').forEach(d => d.open = true));
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _href(path: str) -> str:
    # quote() also encodes ':', so a path can never become a javascript: or data: URL.
    return _e(quote(path))


def _pills(label: str, counts: dict[str, int]) -> str:
    pills = "".join(f'<span class="pill {s}{"" if counts.get(s) else " zero"}"><b>{counts.get(s, 0)}</b> '
                    f'{s}</span>' for s in _STATUSES)
    return f'<div class="totals"><span class="label">{label}</span>{pills}</div>'


def _finding(r: dict[str, Any], anchor: str) -> str:
    level, at, msg = r.get("level", "?"), where(r.get("evidence")), r.get("message") or "(no message)"
    rows = [("level", _e(level)), ("check", f"<code>{_e(r['check'])}</code>"), ("message", _e(msg))]
    if at:
        rows.append(("where", f"<code>{_e(at)}</code>"))
    if r.get("transcript"):
        rows.append(("transcript", f'<a href="{_href(r["transcript"])}">{_e(r["transcript"])}</a>'))
    where_html = f' <span class="where">{_e(at)}</span>' if at else ""
    evidence = json.dumps(r.get("evidence") or {}, indent=2, ensure_ascii=False, default=str)
    return (f'<details class="finding {_e(level)}" id="{anchor}"><summary>'
            f'<span class="lvl {_e(level)}">{_e(level)}</span> <code>{_e(r["check"])}</code>'
            f'{where_html} — {_e(msg)}</summary>'
            + "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
            + f"<pre>{_e(evidence)}</pre></details>")


def _cell(check: str, judged: list[dict[str, Any]], anchors: dict[int, str]) -> str:
    """One matrix cell: a check on a scenario; a failure links to its finding below the row.

    The level shown (and whether a failure is drawn as advisory) is the result's own: a column's
    check may be MUST in one scenario and SHOULD in another that lowers it."""
    if not judged:
        return '<td class="c"></td>'
    status = next(st for st in _WORST if any(r.get("status") == st for r in judged))
    rank = {lv: i for i, lv in enumerate(LEVELS)}
    shown = min((r for r in judged if r.get("status") == status), key=lambda r: rank.get(r.get("level"), 9))
    level = shown.get("level") or "?"
    tip = f"{check} ({level}): {status}" + (f", {len(judged)} results" if len(judged) > 1 else "")
    mark = _MARK.get(status, "?")
    if status == FAIL:
        mark = f'<a href="#{anchors[id(shown)]}">{mark}</a>'
    advisory = " advisory" if status == FAIL and level != MUST else ""
    return f'<td class="c {_e(status)}{advisory}" title="{_e(tip)}">{mark}</td>'


def _feature(feature: str, items: list[dict[str, Any]], results: dict[str, list[dict[str, Any]]],
             anchors: dict[int, str]) -> str:
    checks = list(dict.fromkeys(r["check"] for s in items for r in results.get(s["id"], [])))
    rank = {level: i for i, level in enumerate(LEVELS)}
    # A check's levels in this feature, strongest first ("MUST/SHOULD": a scenario lowered it).
    levels_of: dict[str, set[str]] = {}
    for s in items:
        for r in results.get(s["id"], []):
            levels_of.setdefault(r["check"], set()).add(r.get("level") or "?")
    level_of = {c: joined_levels(ls) for c, ls in levels_of.items()}
    checks.sort(key=lambda c: (rank.get(level_of[c].split("/")[0], 9), c))
    head = "".join(f'<th class="check" title="{_e(c)} ({_e(level_of[c])})"><span>{_e(c)}</span></th>'
                   for c in checks)
    rows, any_fail, any_must = [], False, False
    for s in items:
        mine = results.get(s["id"], [])
        failed = [r for r in mine if r.get("status") == FAIL]
        is_fail = bool(failed) or s.get("status") == FAIL
        is_must = any(r.get("level") == MUST for r in failed)
        any_fail, any_must = any_fail or is_fail, any_must or is_must
        marks = f'{" data-fail" if is_fail else ""}{" data-must" if is_must else ""}'
        cells = "".join(_cell(c, [r for r in mine if r["check"] == c], anchors) for c in checks)
        tx = (f'<a class="tx" href="{_href(s["transcript"])}" title="{_e(s["transcript"])}">transcript</a>'
              if s.get("transcript") else "")
        title = f'<div class="title">{_e(s["title"])}</div>' if s.get("title") else ""
        duration = f"{float(s['duration_s']):.2f} s" if s.get("duration_s") is not None else ""
        status = s.get("status", "?")
        rows.append(f'<tr class="grp scn"{marks}><th scope="row"><code>{_e(s["id"])}</code>{tx}{title}</th>'
                    f'<td><span class="badge {_e(status)}">{_e(status)}</span><div class="title">'
                    f'{duration}</div></td>{cells}</tr>')
        note = "error" if status == FAIL else "reason"
        why = status_reason(s, mine) if status in (SKIP, UNSUPPORTED) else s.get("error")
        notes = ([f'<p class="{note}">{note}: {_e(why)}</p>'] if why else []) + [
            _finding(r, anchors[id(r)]) for r in sorted(failed, key=lambda r: rank.get(r.get("level"), 9))]
        if notes:
            rows.append(f'<tr class="grp findings"{marks}><td colspan="{2 + len(checks)}">{"".join(notes)}</td></tr>')
    counts = {st: sum(1 for s in items if s.get("status") == st) for st in _STATUSES}
    summary = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
    return (f'<section class="grp"{" data-fail" if any_fail else ""}{" data-must" if any_must else ""}>'
            f'<h2>{_e(feature)}<small>{_e(summary)}</small></h2><div class="scroll"><table class="matrix">'
            f'<thead><tr><th>scenario</th><th>status</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></section>')


def render(summary: dict[str, Any]) -> str:
    target = summary.get("target") or {}
    ok, line = verdict(summary)
    if not summary.get("results") and clients_table.verdict(summary):
        ok, line = clients_table.verdict(summary)  # `respcheck clients`: no scenario was run
    results = results_by_scenario(summary)
    anchors = {id(r): f"f-{i}" for i, r in enumerate(summary.get("results", []))}
    totals = summary.get("totals") or Counter(r.get("status") for r in summary.get("results", []))
    failed = [r for r in summary.get("results", []) if r.get("status") == FAIL]
    meta = [("base URL", f"<code>{_e(target.get('base_url', '?'))}</code>"),
            ("model", f"<code>{_e(target.get('model', '?'))}</code>"),
            ("profile", _e(summary.get("profile", "?"))),
            ("started", _e(summary.get("started_at", "?"))),
            ("duration", f"{float(summary.get('duration_s') or 0):.1f} s")]
    name = target.get("name", "target")
    body = [
        f'<header><div class="verdict {"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}'
        f'<small>{_e(line.split(": ", 1)[1])}</small></div><div class="meta">'
        f'<h1>{_e(name)}</h1><dl>' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta) + "</dl></div></header>",
        _pills("checks", totals) + _pills("scenarios", scenario_totals(summary)),
        '<nav class="filters" hidden><button data-f="all" aria-pressed="true">All</button>'
        '<button data-f="fail" aria-pressed="false">Failures only</button>'
        '<button data-f="must" aria-pressed="false">MUST only</button><span class="legend">'
        + " · ".join(f"{_MARK[s]} {s}" for s in _STATUSES) + "</span></nav>",
        *([] if failed else ['<p class="none fail must">No check failed.</p>']),
        *([] if any(r.get("level") == MUST for r in failed) or not failed
          else ['<p class="none must">No MUST check failed.</p>']),
        clients_table.html_section(summary),
        *(_feature(f, items, results, anchors) for f, items in by_feature(scenarios(summary)).items()),
        f'<footer>{_e(summary.get("tool", "respcheck"))} {_e(summary.get("version", ""))} · '
        'transcript links are relative to this report’s folder</footer>',
    ]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(summary.get('tool', 'respcheck'))}: {_e(name)} {'PASS' if ok else 'FAIL'}</title>"
            f"<style>{_CSS}</style></head>\n<body data-filter=\"all\">\n" + "\n".join(body)
            + f"\n<script>{_JS}</script>\n</body></html>\n")
