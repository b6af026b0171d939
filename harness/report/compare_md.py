"""``comparison.md``: the comparison as Markdown, sized for a pull request or a CI job summary.

The same model as ``comparison.html`` (targets as columns, rows grouped by feature and
scenario, cells linking to transcripts), but a row that passes on every target is only counted,
not listed: a PR wants the differences, and a full matrix of a few hundred rows would pass the
size limit of a comment. Server-supplied text is escaped as in ``report.md``.
"""

from __future__ import annotations

from harness import __version__
from harness.core.findings import FAIL, MUST, PASS, SKIP, UNSUPPORTED
from harness.report import clients_table
from harness.report.comparison import NOT_JUDGED, Cell, Comparison, Row, score_text
from harness.report.markdown import _code, _md  # the escaping report.md uses

_TEXT = {PASS: "✓ pass", FAIL: "✗ fail", UNSUPPORTED: "⊘ unsup.", SKIP: "– skip"}


def _cell(cell: Cell, row: Row) -> str:
    if cell.status == NOT_JUDGED:
        return NOT_JUDGED
    text = _TEXT.get(cell.status, _md(cell.status))
    if cell.href:
        text = f"[{text}]({cell.href})"
    return f"**{text}**" if cell.status == FAIL and (row.check is None or cell.level == MUST) else text


def _verdict(run) -> str:
    baseline = run.summary.get("baseline")
    if isinstance(baseline, dict):
        new_must = sum(1 for f in baseline.get("new_failures") or [] if f.get("level") == MUST)
        word = "PASS" if not new_must else "FAIL"
        return f"**{word}** ({new_must} new MUST, {_md(baseline.get('known_failures', 0))} known)"
    if not run.summary.get("results") and clients_table.verdict(run.summary):
        ok, line = clients_table.verdict(run.summary)  # `respcheck clients`: no scenario run
        return f"**{'PASS' if ok else 'FAIL'}** ({_md(line.split(': ', 2)[1].split(';')[0])})"
    n = run.must_failures()
    return f"**{'PASS' if not n else 'FAIL'}** ({n} MUST failed)"


def render(comparison: Comparison) -> str:
    runs = comparison.runs
    labels = [_md(r.label) for r in runs]
    n = comparison.disagreements
    out = [f"# Responses API conformance: {' vs '.join(labels)}", "",
           f"{len(runs)} target{'' if len(runs) == 1 else 's'}; "
           + (f"**{n} check row{'' if n == 1 else 's'} where targets disagree** (marked ≠)"
              if n else "targets agree on every check they both judged")
           + f". Generated {_md(comparison.generated_at)} by respcheck {_md(__version__)}.", "",
           "| target | verdict | base URL | model | profile |", "|---|---|---|---|---|"]
    for run in runs:
        t = run.target
        out.append(f"| {_md(run.label)} | {_verdict(run)} | {_code(t.get('base_url', '?'))} | "
                   f"{_code(t.get('model', '?'))} | {_md(run.summary.get('profile', '?'))} |")

    out += ["", "## Score per feature", "",
            "| feature | " + " | ".join(labels) + " | disagree |",
            "|---|" + "---|" * len(runs) + "--:|"]
    for f in comparison.features:
        out.append(f"| {_md(f.name)} | " + " | ".join(score_text(c) for c in f.scores)
                   + f" | {f.disagreements or ''} |")
    out.append("| **total** | " + " | ".join(f"**{score_text(c)}**" for c in comparison.total_scores())
               + f" | **{n}** |")

    out += clients_table.comparison_markdown([r.label for r in runs], [r.summary for r in runs])

    for f in comparison.features:
        out += ["", f"## {_md(f.name)}", ""]
        out += [f"- {label}: {score_text(c)}" for label, c in zip(labels, f.scores)]
        # A scenario row unless it passed everywhere; a check row when some target failed or
        # refused it, or the targets disagree. The rest is counted (comparison.html has all).
        rows = [r for g in f.groups for r in g.rows
                if r.troubled or r.disagree or (r.check is None and not r.all_pass)]
        quiet = sum(1 for g in f.groups for r in g.rows) - len(rows)
        if rows:
            out += ["", "| | scenario | check | level | " + " | ".join(labels) + " |",
                    "|---|---|---|---|" + ":-:|" * len(runs)]
            for r in rows:
                check = _code(r.check) if r.check else "*(scenario)*"
                out.append(f"| {'≠' if r.disagree else ''} | {_code(r.scenario)} | {check} | "
                           f"{_md(r.level)} | " + " | ".join(_cell(c, r) for c in r.cells) + " |")
        if quiet:
            out += ["", f"_{'All ' if not rows else ''}{quiet} row{'' if quiet == 1 else 's'} "
                    "with no failure and no disagreement (pass, skip or not judged; listed in "
                    "comparison.html)._"]
    out += ["", "Cells link to the transcript that proves them (paths relative to this file). "
            "✓ pass · ✗ fail · ⊘ refused cleanly (unsupported) · – skipped · — not judged."]
    return "\n".join(out) + "\n"
