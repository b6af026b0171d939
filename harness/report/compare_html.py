"""``comparison.html``: several targets side by side, one self-contained page (inline CSS and a
little JS for the filters; no network) that opens from disk.

Targets are columns; rows are grouped by feature, then scenario (the scenario's own status) and
the checks judged on it. Every cell links to the transcript that proves it, relative to the
page's folder. Rows where targets disagree are highlighted and can be shown alone. Every piece
of text is escaped: names, titles and messages come from summaries written from what servers
sent.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import __version__
from harness.core.findings import FAIL, MUST, PASS, SKIP, UNSUPPORTED
from harness.report import clients_table
from harness.report.comparison import NOT_JUDGED, Cell, Comparison, Feature, Row, Run, score_text
from harness.report.html import FILTER_JS

_LABEL = {PASS: "pass", FAIL: "fail", UNSUPPORTED: "unsup.", SKIP: "skip", NOT_JUDGED: NOT_JUDGED}
_CLASS = {PASS: "pass", FAIL: "fail", UNSUPPORTED: "unsupported", SKIP: "skip", NOT_JUDGED: "none"}

_CSS = """
:root{color-scheme:light;--pass:#1a7f37;--fail:#cf222e;--unsupported:#9a6700;--skip:#6e7781;
--line:#d0d7de;--soft:#f6f8fa;--dis:#fff8c5;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328}
body{margin:0 auto;padding:24px;max-width:1500px;background:#fff}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
a{color:#0969da}
h1{margin:0 0 4px;font-size:24px} h2{font-size:19px;margin:32px 0 6px}
h2 small{font-weight:400;color:var(--skip);font-size:14px;margin-left:10px}
.sub{color:var(--skip);margin:0 0 18px}
.sub b.dis{color:#7d4e00;background:var(--dis);padding:1px 6px;border-radius:4px}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid var(--line);padding:4px 9px;text-align:left;vertical-align:top}
thead th{background:var(--soft)}
table.targets td.verdict{font-weight:800;color:#fff;text-align:center;white-space:nowrap}
table.targets td.when{white-space:nowrap}
td.verdict.pass{background:var(--pass)} td.verdict.fail{background:var(--fail)}
table.scores td{min-width:150px} table.scores td.n{text-align:right;min-width:0}
.bar{display:flex;height:7px;border-radius:4px;overflow:hidden;margin-top:4px;background:var(--soft)}
.bar i{display:block} .bar i.pass{background:var(--pass)} .bar i.fail{background:var(--fail)}
.bar i.unsupported{background:var(--unsupported)} .bar i.skip{background:var(--skip)}
ul.scores{margin:4px 0 10px;padding-left:20px;color:#424a53}
nav.filters{display:flex;gap:6px;align-items:center;margin:22px 0 4px}
nav.filters[hidden]{display:none}
nav.filters button{font:inherit;padding:4px 14px;border:1px solid var(--line);border-radius:6px;
background:#fff;cursor:pointer;white-space:nowrap} nav.filters button[aria-pressed=true]{background:#1f2328;color:#fff}
.legend{color:var(--skip);font-size:13px;margin-left:auto}
.scroll{overflow-x:auto}
table.matrix thead th{position:sticky;top:0;z-index:1}
table.matrix th.t{min-width:92px;text-align:center}
table.matrix td.m{width:14px;text-align:center;font-weight:800;color:#7d4e00;padding:4px 3px}
tr.scn th{background:#eef1f4;font-weight:600} tr.scn th .title{font-weight:400;color:var(--skip);margin-left:8px}
tr.scn td.lvl{background:#eef1f4}
tr.chk th{font-weight:400;padding-left:28px}
td.lvl{font-size:12px;font-weight:700} td.lvl.MUST{color:var(--fail)} td.lvl.SHOULD{color:var(--unsupported)}
td.lvl.MAY{color:var(--skip)}
td.c{text-align:center;font-weight:600;white-space:nowrap}
td.c a{color:inherit;text-decoration:none} td.c a:hover{text-decoration:underline}
td.c.pass{color:var(--pass)} td.c.fail{color:#fff;background:var(--fail)}
td.c.fail.advisory{color:var(--fail);background:#ffebe9}
td.c.unsupported{color:var(--unsupported);background:#fff4d4} td.c.skip{color:var(--skip)}
td.c.none{color:#8c959f;font-weight:400}
tr.dis th,tr.dis td.m,tr.dis td.lvl{background:var(--dis)}
tr.dis td.c.pass,tr.dis td.c.none,tr.dis td.c.skip{background:var(--dis)}
body[data-filter=dis] .matrix tbody:not([data-dis]),body[data-filter=bad] .matrix tbody:not([data-bad]),
body[data-filter=dis] section:not([data-dis]),body[data-filter=bad] section:not([data-bad]),
body[data-filter=dis] .matrix tr.chk:not(.dis),body[data-filter=bad] .matrix tr.chk:not(.bad){display:none}
footer{margin-top:32px;color:var(--skip);font-size:12px}
@media print{body{padding:0;max-width:none;font-size:11px}nav.filters{display:none}.scroll{overflow:visible}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}tr{break-inside:avoid}}
"""

_JS = FILTER_JS


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _target_row(run: Run, comparison: Comparison) -> str:
    s, t = run.summary, run.target
    baseline = s.get("baseline") if isinstance(s.get("baseline"), dict) else None
    if baseline is not None:
        new_must = sum(1 for f in baseline.get("new_failures") or [] if f.get("level") == MUST)
        ok = new_must == 0
        verdict = ("PASS" if ok else "FAIL") + f"<br><small>{new_must} new MUST, " \
            f"{_e(baseline.get('known_failures', 0))} known</small>"
    elif not s.get("results") and clients_table.verdict(s):
        ok, line = clients_table.verdict(s)  # `respcheck clients`: no scenario was run
        verdict = ("PASS" if ok else "FAIL") + \
            f"<br><small>{_e(line.split(': ', 2)[1].split(';')[0])}</small>"
    else:
        n = run.must_failures()
        ok = n == 0
        verdict = ("PASS" if ok else "FAIL") + f"<br><small>{n} MUST failed</small>"
    totals = Counter(r.get("status") for r in s.get("results", []))
    report = run.directory / "report.html"
    link = (f'<a href="{_e(quote(_rel(report, comparison)))}">report.html</a>'
            if report.is_file() else "")
    cells = [f'<th scope="row">{_e(run.label)}</th>',
             f'<td class="verdict {"pass" if ok else "fail"}">{verdict}</td>',
             f"<td><code>{_e(t.get('base_url', '?'))}</code></td>",
             f"<td><code>{_e(t.get('model', '?'))}</code></td>",
             f"<td>{_e(s.get('profile', '?'))}</td>",
             f"<td class=\"when\">{_e(s.get('started_at', '?'))}</td>",
             "<td>" + ", ".join(f"{_e(totals.get(st, 0))} {st}" for st in
                                (PASS, FAIL, UNSUPPORTED, SKIP)) + "</td>",
             f"<td>{link}</td>"]
    return "<tr>" + "".join(cells) + "</tr>"


def _rel(path: Path, comparison: Comparison) -> str:
    return os.path.relpath(path.resolve(), comparison.out_dir.resolve()).replace(os.sep, "/")


def _bar(counts) -> str:
    total = sum(counts.values()) or 1
    return '<div class="bar">' + "".join(
        f'<i class="{_CLASS[s]}" style="width:{100 * counts[s] / total:.2f}%"></i>'
        for s in (PASS, FAIL, UNSUPPORTED, SKIP) if counts[s]) + "</div>"


def _scores(comparison: Comparison) -> str:
    head = "".join(f"<th>{_e(r.label)}</th>" for r in comparison.runs)
    rows = []
    for f in comparison.features:
        cells = "".join(f"<td>{_e(score_text(c))}{_bar(c)}</td>" for c in f.scores)
        rows.append(f'<tr><th scope="row"><a href="#{_anchor(f.name)}">{_e(f.name)}</a></th>'
                    f'{cells}<td class="n">{f.disagreements or ""}</td></tr>')
    totals = "".join(f"<td><b>{_e(score_text(c))}</b>{_bar(c)}</td>" for c in comparison.total_scores())
    rows.append(f'<tr><th scope="row">total</th>{totals}<td class="n"><b>'
                f'{comparison.disagreements}</b></td></tr>')
    return (f'<table class="scores"><thead><tr><th>feature</th>{head}<th>disagree</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _anchor(feature: str) -> str:
    return "feature-" + quote(feature, safe="")


def _cell(cell: Cell, row: Row, label: str) -> str:
    what = row.check or "scenario"
    level = f" ({cell.level})" if cell.level and row.check else ""
    tip = f"{label}: {what}{level}: {cell.status if cell.status != NOT_JUDGED else 'not judged'}"
    if cell.message:
        tip += f" — {cell.message}"
    if cell.missing:
        tip += f" (transcript {cell.transcript} is missing)"
    text = _e(_LABEL.get(cell.status, cell.status))
    if cell.href:
        text = f'<a href="{_e(cell.href)}">{text}</a>'
    advisory = " advisory" if cell.status == FAIL and row.check and cell.level != MUST else ""
    return f'<td class="c {_CLASS.get(cell.status, "none")}{advisory}" title="{_e(tip)}">{text}</td>'


def _row(row: Row, comparison: Comparison, title: str = "") -> str:
    dis = (" dis" if row.disagree else "") + (" bad" if row.troubled else "")
    mark = '<td class="m" title="targets disagree">≠</td>' if row.disagree else '<td class="m"></td>'
    cells = "".join(_cell(c, row, run.label) for c, run in zip(row.cells, comparison.runs))
    if row.check is None:
        t = f'<span class="title">{_e(title)}</span>' if title else ""
        return (f'<tr class="scn{dis}">{mark}<th scope="rowgroup"><code>{_e(row.scenario)}</code>{t}'
                f'</th><td class="lvl"></td>{cells}</tr>')
    return (f'<tr class="chk{dis}">{mark}<th scope="row"><code>{_e(row.check)}</code></th>'
            f'<td class="lvl {_e(row.level.split("/")[0])}">{_e(row.level)}</td>{cells}</tr>')


def _feature(feature: Feature, comparison: Comparison) -> str:
    head = "".join(f'<th class="t">{_e(r.label)}</th>' for r in comparison.runs)
    bodies = []
    for g in feature.groups:
        attrs = (" data-dis" if g.disagree else "") + (" data-bad" if g.troubled else "")
        rows = [_row(g.row, comparison, g.title)] + [_row(r, comparison) for r in g.checks]
        bodies.append(f"<tbody{attrs}>{''.join(rows)}</tbody>")
    scores = "".join(f"<li>{_e(r.label)}: {_e(score_text(c))}</li>"
                     for r, c in zip(comparison.runs, feature.scores))
    n = feature.disagreements
    note = f"{n} row{'' if n == 1 else 's'} where targets disagree" if n else "targets agree"
    attrs = (" data-dis" if any(g.disagree for g in feature.groups) else "") + (
        " data-bad" if any(g.troubled for g in feature.groups) else "")
    return (f'<section{attrs} id="{_anchor(feature.name)}"><h2>{_e(feature.name)}<small>{note}</small></h2>'
            f'<ul class="scores">{scores}</ul><div class="scroll"><table class="matrix"><thead><tr>'
            f'<th></th><th>scenario / check</th><th>level</th>{head}</tr></thead>'
            f'{"".join(bodies)}</table></div></section>')


def render(comparison: Comparison) -> str:
    runs = comparison.runs
    names = ", ".join(r.label for r in runs)
    n = comparison.disagreements
    dis = (f'<b class="dis">{n} check row{"" if n == 1 else "s"} where targets disagree</b>'
           if n else "targets agree on every check they both judged")
    body = [
        f"<h1>Responses API conformance: {_e(names)}</h1>",
        f'<p class="sub">{len(runs)} target{"" if len(runs) == 1 else "s"} · {dis} · '
        f"generated {_e(comparison.generated_at)}</p>",
        '<table class="targets"><thead><tr><th>target</th><th>verdict</th><th>base URL</th>'
        "<th>model</th><th>profile</th><th>started</th><th>checks</th><th>report</th></tr></thead>"
        f"<tbody>{''.join(_target_row(r, comparison) for r in runs)}</tbody></table>",
        "<h2>Score per feature<small>(scenario, check) results of each feature's scenarios"
        "</small></h2>",
        _scores(comparison),
        clients_table.comparison_html([r.label for r in runs], [r.summary for r in runs]),
        '<nav class="filters" hidden><button data-f="all" aria-pressed="true">All rows</button>'
        '<button data-f="dis" aria-pressed="false">Disagreements</button>'
        '<button data-f="bad" aria-pressed="false">Failed or refused somewhere</button>'
        '<span class="legend">pass · fail (MUST: solid, SHOULD/MAY: light) · unsup. = refused '
        'cleanly · skip = not run (the reason is in its report) · — = not judged · '
        '≠ = targets disagree · each cell links '
        "to its transcript</span></nav>",
        *(_feature(f, comparison) for f in comparison.features),
        f"<footer>respcheck {_e(__version__)} · links are relative to this page’s folder</footer>",
    ]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>respcheck comparison: {_e(names)}</title>"
            f"<style>{_CSS}</style></head>\n<body data-filter=\"all\">\n" + "\n".join(body)
            + f"\n<script>{_JS}</script>\n</body></html>\n")
