"""Committed reports stay true: each carries the command that regenerates it, and the counts it
states that can be derived from the repository still match the suite.

What is checked (everything else in a committed report is one run's measurement, dated there):

- every report under reports/ (``*.md``, ``benchmarks/*.md``, ``baselines/*.yaml``) has, near
  its top, a line starting ``Regenerate`` whose command names only scripts, modules and
  ``respcheck`` subcommands that exist;
- reports/vllm-conformance.md states the suite's size and its scenarios per feature exactly,
  and its score table has one row per feature of the suite;
- the README's openresponses example lines add up to the suite's size, and the HTTP line's skips
  are the scenarios of the features that profile puts out of scope.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

from harness.core.catalogue import load_catalogue
from harness.faces.cli import build_parser
from harness.run.scenario import load_scenarios

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted([*ROOT.glob("reports/*.md"), *ROOT.glob("reports/benchmarks/*.md"),
                  *ROOT.glob("reports/baselines/*.yaml")])
HEADER_LINES = 15  # "at its top": the command is in the first lines, before any result


@pytest.fixture(scope="module")
def suite() -> Counter[str]:
    return Counter(s.feature for s in load_scenarios())


def regenerate_commands(path: Path) -> list[str]:
    """The commands of the ``Regenerate`` line near the top: its inline code spans, and the
    fenced block that starts within the next few lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines[:HEADER_LINES]):
        text = line.lstrip("# ") if path.suffix == ".yaml" else line
        if text.startswith("Regenerate"):
            commands = re.findall(r"`([^`]+)`", text)
            start = next((j for j in range(i + 1, min(i + 5, len(lines))) if lines[j].startswith("```")), None)
            if start is not None:
                end = next(j for j in range(start + 1, len(lines)) if lines[j].startswith("```"))
                joined = "\n".join(lines[start + 1:end]).replace("\\\n", " ")  # line continuations
                commands += [l.split(" #")[0].strip() for l in joined.splitlines() if l.strip()]
            return commands
    return []


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def missing_pieces(command: str) -> list[str]:
    """What a command names that the repository lacks (a script, a module, a subcommand)."""
    missing = []
    for part in re.split(r"&&|\|", command):
        words = shlex.split(part)
        while words and ("=" in words[0] or words[0] in ("cd", "/usr/bin/time", "-v")):
            words = words[1:]
        if not words:
            continue
        if words[0] == "bash" or words[0].endswith("python") and words[1:] and words[1].endswith(".py"):
            script = words[1]
            if not (ROOT / script).is_file():
                missing.append(script)
        elif words[0].endswith("python") and words[1:3] and words[1] == "-m":
            if importlib.util.find_spec(words[2]) is None:
                missing.append(f"module {words[2]}")
        elif words[0].endswith("respcheck"):
            if words[1] not in _subcommands():
                missing.append(f"respcheck {words[1]}")
        else:
            missing.append(f"unknown program {words[0]}")
    return missing


def test_there_are_committed_reports():
    names = {p.relative_to(ROOT).as_posix() for p in REPORTS}
    assert {"reports/vllm-conformance.md", "reports/baselines/vllm.yaml"} <= names


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_report_names_the_command_that_regenerates_it(path):
    commands = regenerate_commands(path)
    assert commands, f"{path.name}: no `Regenerate: <command>` line in its first {HEADER_LINES} lines"
    for command in commands:
        assert not missing_pieces(command), (command, missing_pieces(command))


def test_the_command_reader_rejects_what_does_not_exist():
    assert missing_pieces(".venv/bin/python -m loadtests.overhead --levels 1") == []
    assert missing_pieces(".venv/bin/respcheck run --target vllm && .venv/bin/respcheck baseline x") == []
    assert missing_pieces("bash scripts/install-vllm.sh") == []
    assert missing_pieces(".venv/bin/python -m loadtests.nothing_here") == ["module loadtests.nothing_here"]
    assert missing_pieces("bash scripts/gone.sh") == ["scripts/gone.sh"]
    assert missing_pieces(".venv/bin/respcheck frobnicate") == ["respcheck frobnicate"]
    assert missing_pieces("make report") == ["unknown program make"]


def test_vllm_report_states_the_suite_as_it_is(suite):
    text = (ROOT / "reports/vllm-conformance.md").read_text(encoding="utf-8")
    stated = re.search(r"the bundled suite of\s+(\d+) scenarios in (\d+) features \(([^)]*)\)", text)
    assert stated, "reports/vllm-conformance.md no longer says 'the bundled suite of N scenarios in M features (...)'"
    total, features, per_feature = int(stated[1]), int(stated[2]), stated[3]
    counts = {name: int(n) for name, n in re.findall(r"([a-z_]+) (\d+)", per_feature)}
    assert (total, features) == (sum(suite.values()), len(suite)), (
        "the suite changed: regenerate reports/vllm-conformance.md (command at its top)")
    assert counts == dict(suite)

    table = text.split("## Scores", 1)[1].split("\n## ", 1)[0]
    rows = {m.replace("\\_", "_") for m in re.findall(r"^\| ([a-z\\_]+) \|", table, re.M)}
    assert rows - {"feature"} == set(suite), "the score table's features are not the suite's"


def test_readme_openresponses_lines_add_up_to_the_suite(suite):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"# (HTTP|WebSocket): (\d+) pass, (\d+) SHOULD fail, (\d+) skip", readme)
    assert [kind for kind, *_ in lines] == ["HTTP", "WebSocket"]
    for _kind, *numbers in lines:
        assert sum(map(int, numbers)) == sum(suite.values())
    out_of_scope = load_catalogue("openresponses").profile.out_of_profile  # features or scenario ids
    skipped = [s for s in load_scenarios() if s.feature in out_of_scope or s.id in out_of_scope]
    assert int(lines[0][3]) == len(skipped)
