"""The report files of a run, all rendered from one ``summary`` dict (DESIGN.md, "Output
contract").

``write_reports`` writes ``summary.json``, ``junit.xml``, ``report.md`` and ``report.html`` into
the report folder, each atomically; ``transcripts/`` belongs to the runner and is left alone.
The text printed at the end of a run is ``console.console_table``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report import html, junit, markdown, summary_json

__all__ = ["write_reports"]


def write_reports(summary: dict[str, Any], report_dir: Path) -> dict[str, Path]:
    """Write every report file of ``summary`` into ``report_dir``; return their paths by kind."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rendered = {
        "summary": ("summary.json", summary_json.dumps(summary)),
        "junit": ("junit.xml", junit.render(summary)),
        "markdown": ("report.md", markdown.render(summary)),
        "html": ("report.html", html.render(summary)),
    }
    return {kind: summary_json.write_atomic(report_dir / name, text)
            for kind, (name, text) in rendered.items()}
