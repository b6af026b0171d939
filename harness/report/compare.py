"""Comparison of several runs: ``comparison.html`` and ``comparison.md`` from report folders,
and the per-feature score table printed by ``respcheck compare`` and a multi-target ``run``.

The matrix itself (targets as columns, evidence as rows, scores per feature) is built in
harness/report/comparison.py; compare_html.py and compare_md.py render it, and this module
writes both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.report import compare_html, compare_md
from harness.report.comparison import CompareError, Comparison, build, score_text
from harness.report.summary_json import write_atomic


def _printable(text: Any) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(text))


def console_scores(comparison: Comparison) -> str:
    """The per-feature score table printed by ``compare`` and a multi-target ``run``."""
    header = ["feature", *(_printable(r.label) for r in comparison.runs), "disagree"]
    body = [[_printable(f.name), *(score_text(c) for c in f.scores), str(f.disagreements)]
            for f in comparison.features]
    body.append(["total", *(score_text(c) for c in comparison.total_scores()),
                 str(comparison.disagreements)])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [header, *body]]
    return "\n".join(lines)


def safe_dir_name(name: str) -> str:
    """A target's name as one folder name (``127.0.0.1:8000`` -> ``127.0.0.1_8000``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "target"


def write_comparison(directories: list[Path], out_dir: Path) -> tuple[Comparison, dict[str, Path]]:
    """Build the comparison of ``directories`` and write comparison.html and .md in out_dir."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CompareError(f"--out {out_dir} exists and is not a directory")
    comparison = build(directories, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return comparison, {
        "html": write_atomic(out_dir / "comparison.html", compare_html.render(comparison)),
        "markdown": write_atomic(out_dir / "comparison.md", compare_md.render(comparison)),
    }


__all__ = ["console_scores", "safe_dir_name", "write_comparison"]
