"""Baselines: the known failures of a target, so that a CI gate fails only on new ones.

``respcheck baseline DIR > FILE`` writes the failures of a report as YAML (JSON is YAML too, so
a JSON file of the same shape is read as well)::

    # respcheck baseline: known failures of target vllm (http://127.0.0.1:8000/v1, model m)
    # report started 2025-11-22T05:00:00+00:00, written 2025-11-22T06:00:00+00:00
    # by respcheck 0.1.0, profile openai; 2 failures (1 MUST)
    # A failure listed here (matched on check + scenario) does not fail
    # `respcheck run --baseline FILE`; the other keys are for people.
    version: 1
    target: vllm
    profile: openai
    known_failures:
    - check: stream.sequence.contiguous
      scenario: streaming/text_basic
      level: MUST
      message: sequence_number jumped from 4 to 6

Entries are sorted by (check, scenario); every failure of the report is listed, whatever its
level (only MUST ones change the exit code, but a SHOULD one that gets fixed is still news).

``respcheck run --baseline FILE`` then: a failure whose (check, scenario) is listed is known and
does not fail the run; the exit code is 1 only for a MUST failure that is not listed; a listed
entry whose check now passes on its scenario is reported as fixed. ``summary.json`` gets::

    "baseline": {"file": "...", "entries": 2, "known_failures": 1,
                 "new_failures": [{check, scenario, level, message}], "fixed": [{...}],
                 "not_judged": [{...}]}

``known_failures``: failures of this run that the baseline lists; ``not_judged``: entries whose
check this run did not judge on that scenario (skipped, or the scenario is gone).

An entry's ``scenario`` may be a glob (``tools/*``, ``*``): a known deviation of a server that
shows wherever its trigger happens (vLLM's ``response.completed`` carrying status
``incomplete`` appears in whichever scenario a random-weight model runs out of tokens) is listed
once for every scenario it may hit. A glob entry is "fixed" when its check was judged on some
matching scenario and failed on none.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import __version__
from harness.core.findings import FAIL, MUST, PASS

BASELINE_VERSION = 1
# Messages are for people reading the file; a server's 10 kB message would drown the diff.
MESSAGE_MAX_CHARS = 200
ENTRY_KEYS = ("check", "scenario", "level", "message")


class BaselineError(Exception):
    """A baseline file is missing or malformed; the message names it (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Baseline:
    file: str
    entries: tuple[dict[str, str], ...]

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        return frozenset((e["check"], e["scenario"]) for e in self.entries)

    def lists(self, check: str, scenario: str) -> bool:
        """Is a failure of ``check`` on ``scenario`` known (exactly, or by a glob entry)?"""
        return any(e["check"] == check and _matches(e["scenario"], scenario)
                   for e in self.entries)


def _matches(pattern: str, scenario: str) -> bool:
    return pattern == scenario or (any(c in pattern for c in "*?[")
                                   and fnmatch.fnmatchcase(scenario, pattern))


def _one_line(text: Any, limit: int | None = None) -> str:
    text = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _entry(r: dict[str, Any]) -> dict[str, str]:
    return {"check": str(r["check"]), "scenario": str(r["scenario"]),
            "level": str(r.get("level") or "?"),
            "message": _one_line(r.get("message") or "", MESSAGE_MAX_CHARS)}


def entries_of(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The failures of a summary as baseline entries, sorted, one per (check, scenario)."""
    unique = {(r["check"], r["scenario"]): _entry(r)
              for r in summary.get("results", []) if r.get("status") == FAIL}
    return [unique[k] for k in sorted(unique)]


def render(summary: dict[str, Any]) -> str:
    """The baseline file (YAML text) of a report's summary."""
    target = summary.get("target") or {}
    entries = entries_of(summary)
    n_must = sum(1 for e in entries if e["level"] == MUST)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    header = [
        f"respcheck baseline: known failures of target {_one_line(target.get('name', '?'))} "
        f"({_one_line(target.get('base_url', '?'))}, model {_one_line(target.get('model', '?'))})",
        f"report started {_one_line(summary.get('started_at', '?'))}, written {now}",
        f"by respcheck {__version__} (report by {_one_line(summary.get('tool', 'respcheck'))} "
        f"{_one_line(summary.get('version', '?'))}), profile {_one_line(summary.get('profile', '?'))}; "
        f"{len(entries)} failure{'' if len(entries) == 1 else 's'} ({n_must} MUST)",
        "A failure listed here (matched on check + scenario) does not fail",
        "`respcheck run --baseline FILE`; level and message are for people.",
    ]
    data = {"version": BASELINE_VERSION, "target": str(target.get("name", "")),
            "profile": str(summary.get("profile", "")), "known_failures": entries}
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=False)
    return "".join(f"# {line}\n" for line in header) + body


def load(path: str | Path) -> Baseline:
    """Read a baseline file; BaselineError names the file and what is wrong with it."""
    path = Path(path)
    where = f"baseline {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{where}: no such file (write one with `respcheck baseline "
                            "REPORT_DIR > FILE`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{where}: cannot be read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise BaselineError(f"{where}: not valid YAML{at}") from None
    if not isinstance(data, dict) or "known_failures" not in data:
        raise BaselineError(f"{where}: expected a mapping with a `known_failures` list")
    if data.get("version", BASELINE_VERSION) != BASELINE_VERSION:
        raise BaselineError(f"{where}: version {data.get('version')!r} is not "
                            f"{BASELINE_VERSION}")
    items = data["known_failures"] if data["known_failures"] is not None else []
    if not isinstance(items, list):
        raise BaselineError(f"{where}: `known_failures` must be a list")
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) and item[k] for k in ("check", "scenario")):
            raise BaselineError(f"{where}: known_failures[{i}] needs string `check` and "
                                "`scenario`")
        entries.append({"check": item["check"], "scenario": item["scenario"],
                        "level": str(item.get("level") or "?"),
                        "message": str(item.get("message") or "")})
    return Baseline(str(path), tuple(entries))


def apply(summary: dict[str, Any], baseline: Baseline) -> dict[str, Any]:
    """Compare a run with its baseline; store and return ``summary["baseline"]``."""
    failed = entries_of(summary)
    passed = {(r["check"], r["scenario"]) for r in summary.get("results", [])
              if r.get("status") == PASS}
    failing = {(e["check"], e["scenario"]) for e in failed}
    listed = {(e["check"], e["scenario"]): e for e in baseline.entries}

    def hits(key: tuple[str, str], judged: set[tuple[str, str]]) -> bool:
        return any(c == key[0] and _matches(key[1], sc) for c, sc in judged)

    report = {
        "file": baseline.file,
        "entries": len(listed),
        "known_failures": sum(1 for c, sc in failing if baseline.lists(c, sc)),
        "new_failures": [e for e in failed if not baseline.lists(e["check"], e["scenario"])],
        "fixed": [listed[k] for k in sorted(listed)
                  if hits(k, passed) and not hits(k, failing)],
        "not_judged": [listed[k] for k in sorted(listed)
                       if not hits(k, passed) and not hits(k, failing)],
    }
    summary["baseline"] = report
    return report


def new_must_failures(report: dict[str, Any]) -> list[dict[str, str]]:
    return [e for e in report["new_failures"] if e["level"] == MUST]


def describe(report: dict[str, Any], label: str = "") -> list[str]:
    """Lines for stdout after a run judged against a baseline."""
    who = f"{label}: " if label else ""
    new_must = new_must_failures(report)
    lines = [f"{who}baseline {report['file']}: {report['known_failures']} known "
             f"failure{'' if report['known_failures'] == 1 else 's'} tolerated, "
             f"{len(report['new_failures'])} new ({len(new_must)} MUST), "
             f"{len(report['fixed'])} fixed"]
    lines += [f"{who}new failure: {e['level']} {e['check']} in {e['scenario']}: "
              f"{_one_line(e['message'], MESSAGE_MAX_CHARS)}" for e in report["new_failures"]]
    lines += [f"{who}fixed since baseline: {e['check']} in {e['scenario']}"
              for e in report["fixed"]]
    if report["not_judged"]:
        lines.append(f"{who}not judged this run ({len(report['not_judged'])} baseline entries): "
                     + ", ".join(f"{e['check']} in {e['scenario']}"
                                 for e in report["not_judged"][:5])
                     + (" ..." if len(report["not_judged"]) > 5 else ""))
    verdict = ("PASS with baseline: no new MUST failure" if not new_must else
               f"FAIL with baseline: {len(new_must)} new MUST failure"
               f"{'' if len(new_must) == 1 else 's'}")
    lines.append(f"{who}{verdict}")
    return lines


# -- `run --baseline` with one or several targets ------------------------------------------
@dataclass(slots=True)
class BaselinePlan:
    """Which baseline each target of a run is judged against.

    ``--baseline FILE`` (once): every target. ``--baseline NAME=FILE`` (once per target):
    the target whose name (as in summary.json and its report folder) or ``--target`` value is
    NAME; a FILE given alone as well covers the targets no NAME names. A value containing
    ``=`` that is an existing file is read as FILE.
    """

    common: Baseline | None
    named: dict[str, Baseline]
    used: set[str]

    def for_target(self, spec: str | None, name: str) -> Baseline | None:
        for key in (name, spec or "reference"):
            if key in self.named:
                self.used.add(key)
                return self.named[key]
        return self.common

    def unused(self) -> list[str]:
        return sorted(set(self.named) - self.used)


def plan(values: list[str] | None) -> BaselinePlan:
    """Parse and load every ``--baseline`` value up front (BaselineError: exit 2 before any
    request is sent)."""
    common: Baseline | None = None
    named: dict[str, Baseline] = {}
    for value in values or []:
        name, sep, file = value.partition("=")
        if sep and name and file and not Path(value).exists():
            if name in named:
                raise BaselineError(f"--baseline {name}=...: given twice for target {name}")
            named[name] = load(file)
        elif common is not None:
            raise BaselineError("--baseline FILE given twice; give FILE once for every target, "
                                "or NAME=FILE once per target")
        else:
            common = load(value)
    return BaselinePlan(common, named, set())
