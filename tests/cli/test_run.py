"""`respcheck run` end to end: real servers on 127.0.0.1, the summary.json contract, exit codes.

DESIGN.md output contract: exit 0 when no MUST check failed, 1 when one did, 2 when the run
could not happen, with one line on stderr.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from cli_servers import Stall, read_summary, refusing_app, serve, write_scenarios

from harness.faces.cli import main
from harness.core.findings import MUST, SHOULD, STATUSES
from harness.run.scenario import load_scenarios
from harness.core.transcript import read_transcript
from harness.run.ws_client import ws_url

RESULT_KEYS = {"scenario", "check", "level", "feature", "status", "message", "evidence",
               "transcript"}
TOP_KEYS = {"tool", "version", "profile", "target", "started_at", "duration_s", "totals",
            "results"}

# A small suite for misbehaving servers: one streamed, one non-streamed, one invalid request.
SMALL_SUITE = {
    "streaming/text": """\
title: streamed text
feature: streaming
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 32, stream: true}
    expect: {status: 200}
""",
    "core/text": """\
title: plain text
feature: core
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 32}
    expect: {status: 200}
""",
    "errors/missing_input": """\
title: missing input is refused
feature: errors
steps:
  - request:
      json: {model: "{{model}}"}
    expect: {status: 400, error_param: input}
""",
}


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line on stderr: {err!r}"
    assert err.startswith("respcheck: error: ")
    return err


def fails(summary: dict) -> dict[tuple[str, str], dict]:
    return {(r["scenario"], r["check"]): r for r in summary["results"] if r["status"] == "fail"}


# -- the embedded reference gateway ------------------------------------------------------
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One full run of the bundled suite against the embedded gateway (shared by the checks)."""
    report = tmp_path_factory.mktemp("reference")
    code = main(["run", "--report-dir", str(report)])
    return code, report


def test_reference_run_exits_0(reference_run):
    code, _ = reference_run
    assert code == 0  # how long it takes is measured in benchmarks, never asserted here


def test_summary_follows_the_output_contract(reference_run, check_ids):
    _, report = reference_run
    s = read_summary(report)
    assert TOP_KEYS <= set(s), sorted(TOP_KEYS - set(s))
    assert s["tool"] == "respcheck"
    assert isinstance(s["version"], str) and s["version"]
    assert s["profile"] == "openai"
    assert set(s["target"]) == {"name", "base_url", "model"}
    assert s["target"]["name"] == "reference"
    assert s["target"]["base_url"].startswith("http://127.0.0.1:")
    assert s["target"]["base_url"].endswith("/v1")
    assert s["target"]["model"]
    started = dt.datetime.fromisoformat(s["started_at"])
    assert started.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - started).total_seconds()) < 300
    assert isinstance(s["duration_s"], (int, float)) and s["duration_s"] >= 0
    assert set(s["totals"]) == set(STATUSES)
    assert sum(s["totals"].values()) == len(s["results"]) > 0
    for status in STATUSES:
        assert s["totals"][status] == sum(r["status"] == status for r in s["results"])
    scenario_ids = {sc.id for sc in load_scenarios()}
    for row in s["results"]:
        assert set(row) == RESULT_KEYS, row
        assert row["check"] in check_ids, row["check"]
        assert row["scenario"] in scenario_ids
        assert row["level"] in ("MUST", "SHOULD", "MAY")
        assert row["status"] in STATUSES
        assert isinstance(row["message"], str) and isinstance(row["evidence"], dict)
    # Every scenario ran and produced at least one row.
    assert {r["scenario"] for r in s["results"]} == scenario_ids


def test_no_must_or_should_failed_on_the_reference(reference_run):
    _, report = reference_run
    s = read_summary(report)
    bad = [r for r in s["results"] if r["status"] == "fail" and r["level"] in (MUST, SHOULD)]
    assert not bad, bad
    assert s["totals"]["fail"] == 0 and s["totals"]["skip"] == 0


def test_transcripts_exist_and_parse(reference_run):
    _, report = reference_run
    s = read_summary(report)
    paths = {r["transcript"] for r in s["results"]}
    assert None not in paths
    for rel in paths:
        assert not Path(rel).is_absolute() and rel.startswith("transcripts/")
        exchanges = read_transcript(report / rel)
        assert exchanges, rel
        for ex in exchanges:
            assert ex.status is not None and ex.error is None, (rel, ex.error)
            if ex.transport == "ws":  # a WebSocket turn (a `transport: ws` scenario)
                assert ex.url.startswith(ws_url(s["target"]["base_url"], ""))
                assert ex.frames
                continue
            assert ex.url.startswith(s["target"]["base_url"])
            assert ex.body


def test_other_reports_are_written(reference_run):
    _, report = reference_run
    for name in ("junit.xml", "report.md", "report.html"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    junit = (report / "junit.xml").read_text(encoding="utf-8")
    assert junit.lstrip().startswith("<?xml") or junit.lstrip().startswith("<testsuite")


def test_only_runs_one_feature_and_skips_the_rest(tmp_path):
    code = main(["run", "--only", "errors", "--report-dir", str(tmp_path)])
    assert code == 0
    s = read_summary(tmp_path)
    by_feature: dict[str, set[str]] = {}
    for sc in load_scenarios():
        rows = [r for r in s["results"] if r["scenario"] == sc.id]
        assert rows, sc.id
        by_feature.setdefault(sc.feature, set()).update(r["status"] for r in rows)
        if sc.feature != "errors":
            assert {r["status"] for r in rows} == {"skip"}, sc.id
            assert all("--only" in r["message"] for r in rows)
            assert not (tmp_path / "transcripts" / sc.transcript_name).exists()
        else:
            assert "skip" not in {r["status"] for r in rows}
            assert (tmp_path / "transcripts" / sc.transcript_name).is_file()
    assert by_feature["errors"] == {"pass"}
    assert s["totals"]["skip"] == sum(1 for sc in load_scenarios() if sc.feature != "errors")


# -- a broken server ---------------------------------------------------------------------
def test_broken_server_fails_with_must_findings(tmp_path, broken_server, check_ids):
    suite = write_scenarios(tmp_path / "suite", SMALL_SUITE)
    report = tmp_path / "report"
    code = main(["run", "--target", broken_server.base_url, "--scenarios", str(suite),
                 "--report-dir", str(report)])
    assert code == 1
    s = read_summary(report)
    assert s["target"]["model"] == "bad"  # discovered through GET /v1/models
    assert all(r["check"] in check_ids for r in s["results"])
    failed = fails(s)

    seq = failed[("streaming/text", "stream.sequence.contiguous")]
    assert seq["level"] == MUST and seq["feature"] == "streaming"
    # The evidence points at the frame: the 4th event carries 4 where 3 was due.
    assert seq["evidence"].get("sequence_number") == 4
    assert seq["evidence"].get("frame") == 3
    assert seq["transcript"] == "transcripts/streaming__text.jsonl"

    obj = failed[("core/text", "response.object")]
    assert obj["level"] == MUST
    assert "object" in obj["message"]

    status = failed[("errors/missing_input", "errors.status")]
    assert status["level"] == MUST
    assert "400" in status["message"] and "200" in status["message"]

    # The defects were planted one at a time: nothing else in the stream is wrong.
    stream_fails = {c for (sc, c) in failed if sc == "streaming/text"}
    assert stream_fails == {"stream.sequence.contiguous"}, stream_fails
    # The transcript of a failing scenario carries its findings.
    transcript = (report / seq["transcript"]).read_text(encoding="utf-8")
    assert '"kind": "findings"' in transcript and "stream.sequence.contiguous" in transcript


def test_broken_server_with_the_bundled_suite(tmp_path, broken_server):
    t0 = time.monotonic()
    code = main(["run", "--target", broken_server.base_url, "--report-dir", str(tmp_path)])
    assert time.monotonic() - t0 < 20
    assert code == 1
    s = read_summary(tmp_path)
    checks = {c for (_, c), r in fails(s).items() if r["level"] == MUST}
    assert {"stream.sequence.contiguous", "response.object", "errors.status"} <= checks
    scen = {r["scenario"] for r in s["results"] if r["status"] == "fail"}
    assert "errors/missing_input" in scen and "streaming/text_basic" in scen


# -- a server that stalls ----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["after_headers", "before_headers"])
def test_stalling_server_is_cut_off_by_the_deadline(tmp_path, mode):
    suite = write_scenarios(tmp_path / "suite", {"streaming/text": SMALL_SUITE["streaming/text"]})
    stall = Stall(mode)
    with serve(stall.app(), f"stall {mode}") as server:
        try:
            t0 = time.monotonic()
            code = main(["run", "--target", server.base_url, "--scenarios", str(suite),
                         "--deadline", "2", "--report-dir", str(tmp_path / "report")])
            elapsed = time.monotonic() - t0
        finally:
            stall.release()
    assert elapsed < 20, f"a stalled server held the run for {elapsed:.1f} s"
    assert code == 1
    s = read_summary(tmp_path / "report")
    failed = {c for (_, c), r in fails(s).items() if r["level"] == MUST}
    assert failed & {"transport.reachable", "sse.limits"}, failed
    row = next(r for r in s["results"] if r["check"] in ("transport.reachable", "sse.limits")
               and r["status"] == "fail")
    assert "timed out" in row["message"] or "deadline" in row["message"]


# -- a server that honestly refuses -------------------------------------------------------
def test_clean_refusal_of_a_refusable_scenario_is_unsupported(tmp_path):
    suite = write_scenarios(tmp_path / "suite", {"core/optional": """\
title: an optional feature
feature: core
refusable: true
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 32}
    expect: {status: 200}
""", "core/required": """\
title: the same request, not refusable
feature: core
level: SHOULD
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 32}
    expect: {status: 200}
"""})
    with serve(refusing_app(), "refusing server") as server:
        code = main(["run", "--target", server.base_url, "--scenarios", str(suite),
                     "--report-dir", str(tmp_path / "report")])
    assert code == 0
    s = read_summary(tmp_path / "report")
    optional = [r for r in s["results"] if r["scenario"] == "core/optional"]
    assert {r["status"] for r in optional} <= {"pass", "unsupported"}
    accepted = next(r for r in optional if r["check"] == "response.accepted")
    assert accepted["status"] == "unsupported"
    assert s["totals"]["unsupported"] >= 1
    # Not refusable (and only SHOULD): the same 400 is a fail, yet no MUST failed -> exit 0.
    required = next(r for r in s["results"]
                    if r["scenario"] == "core/required" and r["check"] == "response.accepted")
    assert required["status"] == "fail" and required["level"] == SHOULD
    scenarios = {sc["id"]: sc["status"] for sc in s.get("scenarios", [])}
    if scenarios:
        assert scenarios["core/optional"] == "unsupported"


# -- the run cannot happen: exit 2, one line on stderr -----------------------------------
def test_unreachable_target(tmp_path, capsys, closed_port):
    t0 = time.monotonic()
    code = main(["run", "--target", f"http://127.0.0.1:{closed_port}/v1",
                 "--report-dir", str(tmp_path / "r")])
    assert time.monotonic() - t0 < 15
    assert code == 2
    err = one_line(capsys.readouterr().err)
    assert str(closed_port) in err and "unreachable" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_unreachable_target_with_a_model_given(tmp_path, capsys, closed_port):
    code = main(["run", "--target", f"http://127.0.0.1:{closed_port}/v1", "--model", "m",
                 "--report-dir", str(tmp_path / "r")])
    assert code == 2
    err = one_line(capsys.readouterr().err)
    assert str(closed_port) in err


def test_unknown_feature(tmp_path, capsys):
    code = main(["run", "--only", "nosuchfeature", "--report-dir", str(tmp_path)])
    assert code == 2
    err = one_line(capsys.readouterr().err)
    assert "nosuchfeature" in err and "errors" in err  # names what exists


@pytest.mark.parametrize("text, says", [
    ("steps: [\n  - {a: 1\n", "invalid YAML"),  # not YAML at all
    ("title: no steps\nfeature: core\n", "steps"),
    ("steps:\n  - request: {json: {}}\n    expect: {stauts: 200}\n", "stauts"),
    ("level: OUGHT\nsteps:\n  - request: {json: {}}\n", "OUGHT"),
])
def test_malformed_scenario(tmp_path, capsys, text, says):
    suite = write_scenarios(tmp_path / "suite", {"core/bad": text})
    code = main(["run", "--scenarios", str(suite), "--report-dir", str(tmp_path / "r")])
    assert code == 2
    err = one_line(capsys.readouterr().err)
    assert says in err and "bad.yaml" in err


def test_missing_scenario_directory(tmp_path, capsys):
    code = main(["run", "--scenarios", str(tmp_path / "nope"), "--report-dir", str(tmp_path)])
    assert code == 2
    assert "nope" in one_line(capsys.readouterr().err)


def test_unknown_profile(tmp_path, capsys):
    code = main(["run", "--profile", "nosuchprofile", "--report-dir", str(tmp_path)])
    assert code == 2
    err = one_line(capsys.readouterr().err)
    assert "nosuchprofile" in err and "openai" in err


def test_report_dir_is_a_file(tmp_path, capsys):
    file = tmp_path / "report"
    file.write_text("not a directory")
    code = main(["run", "--report-dir", str(file)])
    assert code == 2
    assert "--report-dir" in one_line(capsys.readouterr().err)
    assert file.read_text() == "not a directory"


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["run", "--deadline", "soon"]])
def test_bad_arguments(capsys, argv):
    assert main(argv) == 2
    one_line(capsys.readouterr().err)


def test_both_profiles_in_one_run_are_compared_side_by_side(tmp_path, capsys):
    """`--profile openai --profile openresponses`: the target runs under each profile into
    <name>@<profile>/, and the comparison has a column per profile."""
    code = main(["run", "--only", "core", "--only", "mcp", "--profile", "openai",
                 "--profile", "openresponses", "--report-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    by_profile = {p: read_summary(tmp_path / f"reference@{p}") for p in ("openai", "openresponses")}
    assert {p: s["profile"] for p, s in by_profile.items()} == {
        "openai": "openai", "openresponses": "openresponses"}
    # mcp is out of the Open Responses profile: skipped there with the reason, judged under openai.
    mcp = {p: {r["status"] for r in s["results"] if r["feature"] == "mcp"}
           for p, s in by_profile.items()}
    assert mcp["openresponses"] == {"skip"} and "pass" in mcp["openai"]
    assert any("not part of the Open Responses specification" in r["message"]
               for r in by_profile["openresponses"]["results"] if r["feature"] == "mcp")
    markdown = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "reference · openai" in markdown and "reference · openresponses" in markdown
