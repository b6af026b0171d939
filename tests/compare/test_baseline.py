"""Baselines: `respcheck baseline DIR > FILE`, then `respcheck run --baseline FILE`.

End to end against the embedded reference gateway with a two-scenario suite written here: one
scenario passes, the other expects HTTP 201 from a server that rightly answers 200, so it fails
a MUST check (`errors.status`) on a correct server.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
from pathlib import Path

import pytest
import yaml

from compare_fixtures import EVIL, write_run

from harness import __version__
from harness.report.baseline import BaselineError, apply, load, render
from harness.faces.cli import main

SUITE = {
    "core/ok": """\
title: plain text
feature: core
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 16}
    expect: {status: 200}
""",
    "core/wrong": """\
title: expects the wrong status (a correct server fails it)
feature: core
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 16}
    expect: {status: 201}
""",
}
KNOWN = ("errors.status", "core/wrong")


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenarios")
    for sid, text in SUITE.items():
        path = root / f"{sid}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def first_run(suite, tmp_path_factory):
    """The run without a baseline, and the baseline written from it."""
    report = tmp_path_factory.mktemp("first")
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report)])
    return code, report


def read(report: Path) -> dict:
    return json.loads((report / "summary.json").read_text(encoding="utf-8"))


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line on stderr: {err!r}"
    assert err.startswith("respcheck: error: ")
    return err


def write_baseline(path: Path, entries: list[tuple[str, str]], level: str = "MUST") -> Path:
    data = {"version": 1, "known_failures": [
        {"check": c, "scenario": s, "level": level, "message": "hand-written"} for c, s in entries]}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_without_baseline_the_wrong_scenario_fails_the_run(first_run):
    code, report = first_run
    assert code == 1
    failed = {(r["check"], r["scenario"]) for r in read(report)["results"] if r["status"] == "fail"}
    assert failed == {KNOWN}
    assert "baseline" not in read(report)


@pytest.fixture(scope="module")
def baseline_file(first_run, tmp_path_factory):
    _, report = first_run
    out = tmp_path_factory.mktemp("baseline") / "known.yaml"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # `respcheck baseline DIR > FILE`
        assert main(["baseline", str(report)]) == 0
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out


def test_baseline_file_lists_the_failures_with_a_header(baseline_file, first_run):
    text = baseline_file.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header and text.startswith("# respcheck baseline")
    assert "target reference" in header[0]
    assert f"respcheck {__version__}" in "\n".join(header)
    started = read(first_run[1])["started_at"]
    assert started in "\n".join(header)  # the report's date
    data = yaml.safe_load(text)
    assert data["version"] == 1 and data["target"] == "reference"
    assert data["known_failures"] == [{"check": "errors.status", "scenario": "core/wrong",
                                       "level": "MUST", "message": "expected HTTP 201, got 200"}]
    assert [e.get("check") for e in load(baseline_file).entries] == ["errors.status"]


def test_with_the_baseline_the_run_passes(suite, baseline_file, tmp_path, capsys):
    report = tmp_path / "r"
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--baseline", str(baseline_file)])
    out = capsys.readouterr().out
    assert code == 0
    b = read(report)["baseline"]
    assert b == {"file": str(baseline_file), "entries": 1, "known_failures": 1,
                 "new_failures": [], "fixed": [], "not_judged": []}
    assert "PASS with baseline" in out


def test_a_baseline_entry_that_now_passes_is_reported_fixed(suite, first_run, tmp_path, capsys):
    passing = sorted((r["check"], r["scenario"]) for r in read(first_run[1])["results"]
                     if r["status"] == "pass" and r["scenario"] == "core/ok")[0]
    file = write_baseline(tmp_path / "b.yaml", [KNOWN, passing, ("x.gone", "core/removed")])
    report = tmp_path / "r"
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--baseline", str(file)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"fixed since baseline: {passing[0]} in {passing[1]}" in out
    b = read(report)["baseline"]
    assert [(e["check"], e["scenario"]) for e in b["fixed"]] == [passing]
    assert [(e["check"], e["scenario"]) for e in b["not_judged"]] == [("x.gone", "core/removed")]
    assert b["known_failures"] == 1 and b["new_failures"] == []


def test_a_failure_not_in_the_baseline_still_fails(suite, tmp_path, capsys):
    file = write_baseline(tmp_path / "b.yaml", [("errors.status", "core/ok")])
    report = tmp_path / "r"
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--baseline", str(file)])
    out = capsys.readouterr().out
    assert code == 1
    b = read(report)["baseline"]
    assert [(e["check"], e["scenario"], e["level"]) for e in b["new_failures"]] == [
        ("errors.status", "core/wrong", "MUST")]
    assert b["known_failures"] == 0
    assert "new failure: MUST errors.status in core/wrong" in out


@pytest.mark.parametrize("content, why", [
    (None, "no such file"),
    ("known_failures: [{check: a.b}]\n", "known_failures[0]"),
    ("known_failures: {a: 1}\n", "must be a list"),
    ("just a string\n", "known_failures"),
    ("known_failures: [\n", "not valid YAML"),
    ("version: 7\nknown_failures: []\n", "version"),
])
def test_a_missing_or_malformed_baseline_exits_2(suite, tmp_path, capsys, content, why):
    file = tmp_path / "b.yaml"
    if content is not None:
        file.write_text(content, encoding="utf-8")
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(tmp_path / "r"),
                 "--baseline", str(file)])
    err = one_line(capsys.readouterr().err)
    assert code == 2
    assert why in err and str(file) in err
    assert not (tmp_path / "r" / "summary.json").exists()  # nothing was run


def test_baseline_of_a_folder_without_summary_exits_2(tmp_path, capsys):
    assert main(["baseline", str(tmp_path)]) == 2
    one_line(capsys.readouterr().err)


def test_render_sorts_escapes_and_round_trips(tmp_path):
    summary = json.loads((write_run(tmp_path, 2) / "summary.json").read_text(encoding="utf-8"))
    summary["results"].append(dict(summary["results"][0], check="a.first", status="fail",
                                   message="line one\nline two\x1b[31m " + "x" * 500))
    text = render(summary)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert all("\n" not in h and "\x1b" not in h for h in header)
    assert all(line.startswith("#") for line in text.splitlines()[:len(header)])
    file = tmp_path / "b.yaml"
    file.write_text(text, encoding="utf-8")
    entries = load(file).entries
    keys = [(e["check"], e["scenario"]) for e in entries]
    assert keys == sorted(keys)
    assert keys[0] == ("a.first", "core/text")
    assert all(len(e["message"]) <= 200 and "\n" not in e["message"] for e in entries)
    assert any(EVIL in e["message"] for e in entries)  # kept as data, safely quoted by YAML
    assert all(set(e) == {"check", "scenario", "level", "message"} for e in entries)
    # The summary's own failures are all known against its own baseline.
    report = apply(summary, load(file))
    assert report["new_failures"] == [] and report["known_failures"] == len(entries)


def test_json_baseline_is_accepted(tmp_path):
    file = tmp_path / "b.json"
    file.write_text(json.dumps({"known_failures": [{"check": "c", "scenario": "s"}]}))
    assert [(e["check"], e["scenario"]) for e in load(file).entries] == [("c", "s")]
    with pytest.raises(BaselineError):
        load(tmp_path / "absent.yaml")


# -- several targets ----------------------------------------------------------------------
def test_several_targets_run_in_turn_and_are_compared(suite, baseline_file, tmp_path, capsys):
    report = tmp_path / "multi"
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--target", "reference", "--target", "reference"])
    out = capsys.readouterr().out
    assert code == 1  # the wrong scenario fails on both
    for name in ("reference", "reference-2"):
        assert read(report / name)["target"]["name"] == "reference"
    assert (report / "comparison.html").is_file() and (report / "comparison.md").is_file()
    html = (report / "comparison.html").read_text(encoding="utf-8")
    assert 'href="reference/transcripts/core__wrong.jsonl"' in html
    assert 'href="reference-2/transcripts/core__ok.jsonl"' in html
    scores = [line for line in out.splitlines() if line.startswith("core ")][-1]
    assert scores.count("pass, 1 fail") == 2  # the per-feature score table, one per target

    # One FILE for every target: both pass.
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--target", "reference", "--target", "reference", "--baseline", str(baseline_file)])
    capsys.readouterr()
    assert code == 0
    assert read(report / "reference-2")["baseline"]["known_failures"] == 1

    # NAME=FILE for a name that no target has: exit 2.
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--target", "reference", "--target", "reference",
                 "--baseline", f"vllm={baseline_file}"])
    assert code == 2
    assert "vllm" in one_line(capsys.readouterr().err)


def test_named_baseline_applies_to_that_target(suite, baseline_file, tmp_path, capsys):
    report = tmp_path / "r"
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--baseline", f"reference={baseline_file}"])
    capsys.readouterr()
    assert code == 0 and read(report)["baseline"]["known_failures"] == 1


def test_a_target_that_cannot_run_exits_2_and_the_others_still_run(suite, closed_port, tmp_path,
                                                                   capsys):
    report = tmp_path / "r"
    url = f"http://127.0.0.1:{closed_port}/v1"
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(report),
                 "--target", "reference", "--target", url])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("respcheck: error")]
    assert len(errors) == 1 and url in errors[0] and "unreachable" in errors[0]
    assert (report / "reference" / "summary.json").is_file()
    assert (report / "comparison.html").is_file()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_glob_entries_cover_a_deviation_wherever_it_shows():
    """A scenario glob lists a server's known deviation once for every scenario it may hit;
    a failure of another check, or outside the glob, is still new."""
    from harness.report.baseline import Baseline, apply

    def row(check, scenario, status):
        return {"check": check, "scenario": scenario, "status": status, "level": "MUST",
                "message": "m"}

    summary = {"results": [
        row("stream.terminal.status", "streaming/text_basic", "fail"),
        row("stream.terminal.status", "streaming/message_roles", "pass"),
        row("stream.sequence.contiguous", "streaming/text_basic", "fail"),
        row("stream.terminal.status", "tools/forced_function_stream", "fail"),
    ]}
    base = Baseline("b.yaml", ({"check": "stream.terminal.status", "scenario": "streaming/*",
                                "level": "MUST", "message": ""},
                               {"check": "tools.choice", "scenario": "tools/*",
                                "level": "MUST", "message": ""}))
    report = apply(summary, base)
    assert report["known_failures"] == 1
    assert {(e["check"], e["scenario"]) for e in report["new_failures"]} == {
        ("stream.sequence.contiguous", "streaming/text_basic"),
        ("stream.terminal.status", "tools/forced_function_stream")}
    assert report["fixed"] == [] and [e["check"] for e in report["not_judged"]] == ["tools.choice"]
    summary["results"][0]["status"] = "pass"
    assert [e["check"] for e in apply(summary, base)["fixed"]] == ["stream.terminal.status"]
