"""``summary.json``: the machine-readable result of a run (DESIGN.md, "Output contract").

Besides reading and writing the file, this module holds the few views of a summary that every
renderer shares, so that the console, JUnit, Markdown and HTML never disagree on them: the
scenario list, the failures in level order, where a finding points, and the verdict.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from harness.core.findings import FAIL, LEVELS, MUST, PASS, SKIP, UNSUPPORTED


def dumps(summary: dict[str, Any]) -> str:
    # default=str: an odd value in evidence (bytes, a datetime) must not lose the whole report.
    return json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"


def load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 so that a reader sees the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; CI artifact uploaders run as other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def scenarios(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The runner's ``scenarios`` list; derived from ``results`` when a summary lacks it."""
    if summary.get("scenarios") is not None:
        return list(summary["scenarios"])
    derived: dict[str, dict[str, Any]] = {}
    for r in summary.get("results", []):
        s = derived.setdefault(r["scenario"], {
            "id": r["scenario"], "title": "", "feature": r["scenario"].split("/")[0],
            "statuses": [], "duration_s": None, "transcript": None, "error": None})
        s["statuses"].append(r.get("status"))
        s["transcript"] = s["transcript"] or r.get("transcript")
    for s in derived.values():
        st = s.pop("statuses")
        s["status"] = next((x for x in (FAIL, UNSUPPORTED, PASS) if x in st), SKIP)
    return list(derived.values())


def status_reason(scenario: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """Why a scenario has its status, when it was not judged pass or fail: the scenario's own
    ``error``, else the message of its first result with that status. A skip's reason lives in
    its one ``response.accepted`` result ("not selected (--only core)", "runs only against
    reference", "cannot run over WebSocket: ...", a profile's out-of-profile reason)."""
    if scenario.get("error"):
        return str(scenario["error"])
    status = scenario.get("status")
    return next((str(r["message"]) for r in results
                 if r.get("status") == status and r.get("message")), "")


def by_feature(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Scenarios grouped by feature, in the order the run met them."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in items:
        groups.setdefault(s.get("feature") or s["id"].split("/")[0], []).append(s)
    return groups


def results_by_scenario(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in summary.get("results", []):
        out.setdefault(r["scenario"], []).append(r)
    return out


def failures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Failed results, MUST first, then SHOULD, then MAY; run order within a level."""
    rank = {level: i for i, level in enumerate(LEVELS)}
    failed = [r for r in summary.get("results", []) if r.get("status") == FAIL]
    return sorted(failed, key=lambda r: rank.get(r.get("level"), len(LEVELS)))


def joined_levels(levels: set[str]) -> str:
    """The levels one check was judged at, strongest first: ``MUST``, or ``MUST/SHOULD`` when a
    scenario lowered it (or a profile raised it) somewhere. The first is the one to sort by."""
    rank = {level: i for i, level in enumerate(LEVELS)}
    return "/".join(sorted(levels, key=lambda level: (rank.get(level, len(LEVELS)), level)))


# The most of a failure's message the verdict line quotes: the line stays one terminal line.
VERDICT_MESSAGE_CHARS = 100


def verdict(summary: dict[str, Any]) -> tuple[bool, str]:
    """(passed, line). The run passes when no MUST check failed; this is the exit code's rule.

    A failing line names the MUST check that failed most often (the first to fail, on a tie),
    with how many of the failures it is and where it first failed, so a CI log's last line says
    what went wrong: ``FAIL: 12 MUST checks failed; most common: transport.deadline (12 of 12;
    first routes/create: no response headers within 1 s (the deadline))``."""
    must = [r for r in failures(summary) if r.get("level") == MUST]
    n = len(must)
    if n == 0:
        return True, "PASS: no MUST check failed"
    counts = Counter(r["check"] for r in must)
    check = max(counts, key=counts.__getitem__)  # max keeps the first of equal counts
    first = next(r for r in must if r["check"] == check)
    message = " ".join(str(first.get("message") or "").split())
    if len(message) > VERDICT_MESSAGE_CHARS:
        message = message[:VERDICT_MESSAGE_CHARS - 3] + "..."
    at = f"{first['scenario']}: {message}" if message else first["scenario"]
    if n == 1:
        return False, f"FAIL: 1 MUST check failed: {check} ({at})"
    return False, (f"FAIL: {n} MUST checks failed; most common: {check} "
                   f"({counts[check]} of {n}; first {at})")


def scenario_totals(summary: dict[str, Any]) -> Counter[str]:
    return Counter(s.get("status", SKIP) for s in scenarios(summary))


def where(evidence: dict[str, Any] | None) -> str:
    """Where a finding points, as a person reads it: ``frame 3 seq 7 $.item.id``."""
    ev = evidence or {}
    parts = [f"{label} {ev[key]}" for key, label in (("frame", "frame"), ("sequence_number", "seq"))
             if ev.get(key) is not None]
    return " ".join(parts + ([str(ev["path"])] if ev.get("path") else []))
