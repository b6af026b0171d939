"""The comparison of several runs as data: what ``comparison.html``, ``comparison.md`` and the
console score table all render (harness/report/compare.py writes them).

Input: report folders written by ``respcheck run`` (each holds ``summary.json`` and
``transcripts/``). Output: one matrix in which targets are columns and the evidence is rows:

- rows are grouped by **feature** (the scenario's feature, the same grouping as the console
  table and ``--only``), then by **scenario**: one scenario row (its overall status on each
  target), then one row per **check** judged on that scenario (check id and level);
- a level is each result's own (a scenario may lower its expectation checks, a profile may
  raise a check): every cell carries the level its target judged it at, and the row's level
  names them all (``MUST/SHOULD`` when two targets' profiles disagree);
- each cell is that target's status for the row: pass, fail, unsupported, skip, or ``—`` when
  the target never judged it; a cell links (relative to the output folder) to the transcript
  that proves it;
- a row **disagrees** when at least two targets judged it (pass, fail or unsupported) with
  different verdicts; ``skip`` and ``—`` are no opinion;
- per feature and target, a score: ``tools: 41/45 pass, 2 fail, 2 unsupported`` counts the
  (scenario, check) results of that feature's scenarios.

The model (``build``) is shared by the HTML and Markdown renderers and the console table, so the
three never disagree on a number.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.core.findings import FAIL, LEVELS, MUST, PASS, SKIP, UNSUPPORTED
from harness.report.summary_json import joined_levels, status_reason
from harness.report.summary_json import scenarios as summary_scenarios

NOT_JUDGED = "—"
JUDGED = frozenset({PASS, FAIL, UNSUPPORTED})  # the statuses that are an opinion
_WORST = (FAIL, UNSUPPORTED, PASS, SKIP)       # a key judged twice shows its worst status


class CompareError(Exception):
    """A report folder cannot be read; the message names it (exit code 2)."""


@dataclass(slots=True)
class Run:
    """One target's report folder."""

    label: str                     # column name: target.name, made unique
    directory: Path
    summary: dict[str, Any]
    results: dict[tuple[str, str], dict[str, Any]]   # (scenario, check) -> worst result
    scenarios: dict[str, dict[str, Any]]             # scenario id -> scenario entry

    @property
    def target(self) -> dict[str, Any]:
        return self.summary.get("target") or {}

    def must_failures(self) -> int:
        return sum(1 for r in self.summary.get("results", [])
                   if r.get("status") == FAIL and r.get("level") == MUST)


@dataclass(slots=True)
class Cell:
    status: str                    # pass | fail | unsupported | skip | NOT_JUDGED
    message: str = ""
    href: str | None = None        # URL-quoted relative link to the transcript
    transcript: str | None = None  # the link as a plain path (for display)
    missing: bool = False          # the summary names a transcript that is not on disk
    level: str = ""                # the level this target judged the check at ("" on a scenario row)


@dataclass(slots=True)
class Row:
    scenario: str
    check: str | None              # None: the scenario row
    level: str                     # the cells' levels, strongest first: MUST, or MUST/SHOULD
    cells: list[Cell]

    @property
    def disagree(self) -> bool:
        return len({c.status for c in self.cells if c.status in JUDGED}) > 1

    @property
    def all_pass(self) -> bool:
        return all(c.status == PASS for c in self.cells)

    @property
    def troubled(self) -> bool:
        """Some target failed it or refused it."""
        return any(c.status in (FAIL, UNSUPPORTED) for c in self.cells)


@dataclass(slots=True)
class ScenarioGroup:
    id: str
    title: str
    row: Row                        # the scenario's own status per target
    checks: list[Row] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        return [self.row, *self.checks]

    @property
    def disagree(self) -> bool:
        return any(r.disagree for r in self.rows)

    @property
    def troubled(self) -> bool:
        return any(r.troubled for r in self.rows)


@dataclass(slots=True)
class Feature:
    name: str
    groups: list[ScenarioGroup]
    scores: list[Counter[str]]      # per run: statuses of this feature's check results

    @property
    def disagreements(self) -> int:
        return sum(r.disagree for g in self.groups for r in g.checks)


@dataclass(slots=True)
class Comparison:
    runs: list[Run]
    features: list[Feature]
    out_dir: Path
    generated_at: str

    @property
    def disagreements(self) -> int:
        return sum(f.disagreements for f in self.features)

    def total_scores(self) -> list[Counter[str]]:
        return [sum((f.scores[i] for f in self.features), Counter()) for i in range(len(self.runs))]


# -- loading --------------------------------------------------------------------------------
def load_run(directory: Path) -> tuple[Path, dict[str, Any]]:
    """(folder, summary) of a report folder (or of a summary.json path)."""
    path = Path(directory)
    if path.is_file():
        path = path.parent
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise CompareError(f"{path}: no summary.json (give a folder written by `respcheck run "
                           "--report-dir`)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompareError(f"{summary_path}: not readable JSON ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("results"), list) or not all(
            isinstance(r, dict) and isinstance(r.get("scenario"), str)
            and isinstance(r.get("check"), str) for r in summary["results"]):
        raise CompareError(f"{summary_path}: not a respcheck summary (no results list)")
    return path, summary


def _labels(loaded: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """Column names: target.name, then `· profile` and `· transport` when the runs compared do
    not all share them (one target under both profiles: `reference · openai`,
    `reference · openresponses`); duplicates get their folder's name, then a counter."""
    def value(summary: dict[str, Any], key: str) -> str:
        return str(summary.get(key) or ("http" if key == "transport" else "?"))

    varying = [k for k in ("profile", "transport") if len({value(s, k) for _, s in loaded}) > 1]
    names = [" · ".join([str((s.get("target") or {}).get("name") or d.name or "target"),
                         *(value(s, k) for k in varying)]) for d, s in loaded]
    counts = Counter(names)
    labels = [n if counts[n] == 1 else f"{n} ({d.resolve().name})" for n, (d, _) in zip(names, loaded)]
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _index(summary: dict[str, Any]) -> tuple[dict[tuple[str, str], dict], dict[str, dict]]:
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for r in summary.get("results", []):
        key = (r["scenario"], r["check"])
        old = results.get(key)
        if old is None or _WORST.index(r.get("status", SKIP)) < _WORST.index(old.get("status", SKIP)):
            results[key] = r
    return results, {s["id"]: s for s in summary_scenarios(summary)}


def _link(run: Run, transcript: str | None, out_dir: Path) -> tuple[str | None, str | None, bool]:
    if not transcript:
        return None, None, False
    path = run.directory / transcript
    rel = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
    return quote(rel), rel, not path.is_file()


def _cell(run: Run, result: dict[str, Any] | None, out_dir: Path) -> Cell:
    if result is None:
        return Cell(NOT_JUDGED)
    href, shown, missing = _link(run, result.get("transcript"), out_dir)
    message = result.get("message") or result.get("error") or ""
    return Cell(result.get("status") or SKIP, str(message), None if missing else href, shown, missing,
                result.get("level") or "")


def _scenario_cell(run: Run, sid: str, out_dir: Path) -> Cell:
    """A scenario's own cell; a skipped or refused one carries its reason (report.md's words)."""
    scenario = run.scenarios.get(sid)
    cell = _cell(run, scenario, out_dir)
    if scenario is not None and not cell.message:
        mine = [r for (s, _check), r in run.results.items() if s == sid]
        cell.message = status_reason(scenario, mine)
    return cell


def build(directories: list[Path], out_dir: Path) -> Comparison:
    loaded = [load_run(d) for d in directories]
    runs = []
    for label, (directory, summary) in zip(_labels(loaded), loaded):
        results, scenarios = _index(summary)
        runs.append(Run(label, directory, summary, results, scenarios))

    # Features and scenarios in the order the runs met them; checks by level, then id.
    order: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        for sid, s in run.scenarios.items():
            feature = s.get("feature") or sid.split("/")[0]
            order.setdefault(feature, {}).setdefault(sid, s)
        for (sid, _check) in run.results:
            if not any(sid in group for group in order.values()):
                order.setdefault(sid.split("/")[0], {}).setdefault(sid, {"id": sid})
    rank = {level: i for i, level in enumerate(LEVELS)}
    per_scenario: list[dict[str, list[tuple[str, dict[str, Any]]]]] = []
    for run in runs:
        mine: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for (sid, check), r in run.results.items():
            mine.setdefault(sid, []).append((check, r))
        per_scenario.append(mine)
    features = []
    for feature, scenario_map in order.items():
        groups, scores = [], [Counter() for _ in runs]
        for sid, s in scenario_map.items():
            levels: dict[str, set[str]] = {}
            for i in range(len(runs)):
                for check, r in per_scenario[i].get(sid, ()):
                    levels.setdefault(check, set()).add(r.get("level") or "?")
                    scores[i][r.get("status") or SKIP] += 1
            checks = {c: joined_levels(ls) for c, ls in levels.items()}
            head = Row(sid, None, "", [_scenario_cell(run, sid, out_dir) for run in runs])
            rows = [Row(sid, c, checks[c], [_cell(run, run.results.get((sid, c)), out_dir)
                                             for run in runs])
                    for c in sorted(checks, key=lambda c: (rank.get(checks[c].split("/")[0], 9), c))]
            title = next((run.scenarios[sid].get("title") for run in runs
                          if run.scenarios.get(sid, {}).get("title")), "")
            groups.append(ScenarioGroup(sid, title or "", head, rows))
        features.append(Feature(feature, groups, scores))
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return Comparison(runs, features, Path(out_dir), now)


# -- text views shared by the renderers -----------------------------------------------------
def score_text(counts: Counter[str]) -> str:
    """``41/45 pass, 2 fail, 2 unsupported``; ``not run`` when the target has no result."""
    total = sum(counts.values())
    if not total:
        return "not run"
    rest = [f"{counts[s]} {s}" for s in (FAIL, UNSUPPORTED, SKIP) if counts[s]]
    return ", ".join([f"{counts[PASS]}/{total} pass", *rest])


def score_line(feature: str, counts: Counter[str]) -> str:
    return f"{feature}: {score_text(counts)}"


__all__ = ["Cell", "Comparison", "CompareError", "Feature", "JUDGED", "NOT_JUDGED", "Row", "Run",
           "ScenarioGroup", "build", "load_run", "score_line", "score_text"]
