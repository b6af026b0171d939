"""The pytest plugin (entry point ``respcheck = harness.faces.pytest_plugin``), run with pytester.

Each bundled scenario becomes one test item when ``--respcheck`` (or ``--respcheck-target``)
is given; otherwise the plugin adds nothing to a pytest run.
"""

from __future__ import annotations

import json
import time

import pytest

from cli_servers import refusing_app, serve

from harness.run.scenario import load_scenarios

pytest_plugins = ["pytester"]

BUNDLED = load_scenarios()
FEATURES = {sc.feature for sc in BUNDLED}


def n_feature(feature: str) -> int:
    return sum(sc.feature == feature for sc in BUNDLED)


def test_every_bundled_scenario_passes_against_the_embedded_gateway(pytester):
    result = pytester.runpytest("--respcheck", "-p", "respcheck", "-v")
    result.assert_outcomes(passed=len(BUNDLED))
    result.stdout.fnmatch_lines([f"*collected {len(BUNDLED)} items*"])
    for sc in BUNDLED:
        result.stdout.fnmatch_lines([f"respcheck::{sc.id} PASSED*"])
    assert result.ret == pytest.ExitCode.OK


def test_feature_markers_select_scenarios(pytester):
    result = pytester.runpytest("--respcheck", "-m", "errors")
    result.assert_outcomes(passed=n_feature("errors"), deselected=len(BUNDLED) - n_feature("errors"))


def test_without_the_flag_the_plugin_adds_nothing(pytester):
    pytester.makepyfile("""
        def test_one():
            assert True

        def test_two():
            assert 1 + 1 == 2
    """)
    for args in ((), ("-p", "respcheck")):
        result = pytester.runpytest(*args)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["collected 2 items"])
        result.stdout.no_fnmatch_line("*respcheck::*")
    # ... yet it is loaded: its options are there.
    pytester.runpytest("--help").stdout.fnmatch_lines(["*--respcheck *"])


def test_plugin_items_sit_beside_ordinary_tests(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest("--respcheck", "-m", "streaming or not respcheck")
    result.assert_outcomes(passed=1 + n_feature("streaming"))


def test_alluredir_gets_request_and_transcript_attachments(pytester, tmp_path):
    pytest.importorskip("allure_pytest")
    allure_dir = tmp_path / "allure"
    result = pytester.runpytest("--respcheck", "-k", "text_basic or missing_input",
                                "--alluredir", str(allure_dir))
    result.assert_outcomes(passed=2, deselected=len(BUNDLED) - 2)
    results = [json.loads(p.read_text(encoding="utf-8"))
               for p in allure_dir.glob("*-result.json")]
    by_scenario = {}
    for r in results:
        labels = {lab["name"]: lab.get("value") for lab in r.get("labels", [])}
        by_scenario[labels.get("scenario")] = (r, labels)
    assert set(by_scenario) == {"streaming/text_basic", "errors/missing_input"}
    for sid, (r, labels) in by_scenario.items():
        sc = next(s for s in BUNDLED if s.id == sid)
        assert r["status"] == "passed"
        assert r["name"] == sc.title
        assert labels["feature"] == sc.feature
        attachments = {a["name"]: a for a in r["attachments"]}
        assert {"step0: request", "step0: transcript", "check results"} <= set(attachments)
        request = json.loads((allure_dir / attachments["step0: request"]["source"]).read_text())
        assert request["model"] == "mock-1"
        transcript = (allure_dir / attachments["step0: transcript"]["source"]).read_text()
        kinds = [json.loads(line)["kind"] for line in transcript.splitlines()]
        assert kinds[0] == "request" and "response" in kinds and kinds[-1] == "end"
        checks = json.loads((allure_dir / attachments["check results"]["source"]).read_text())
        assert checks and all(c["status"] == "pass" for c in checks)


def test_broken_server_fails_naming_the_check(pytester, broken_server):
    result = pytester.runpytest("--respcheck-target", broken_server.base_url,
                                "-k", "text_basic or missing_input or string_input")
    result.assert_outcomes(failed=3, deselected=len(BUNDLED) - 3)
    result.stdout.fnmatch_lines([
        "*scenario streaming/text_basic*",
        'MUST stream.sequence.contiguous: *"frame": 3, "sequence_number": 4*',
    ])
    result.stdout.fnmatch_lines(["*scenario errors/missing_input*",
                                 "MUST errors.status: expected HTTP 400, got 200*"])
    result.stdout.fnmatch_lines(["*scenario core/string_input*"])
    result.stdout.fnmatch_lines(["MUST response.object:*"])
    result.stdout.fnmatch_lines(
        ["FAILED respcheck::streaming/text_basic - MUST stream.sequence.contiguous*"])
    # The plugin keeps a transcript per scenario under pytest's basetemp.
    transcript = pytester.path.parent / "basetemp" / "respcheck" / "streaming__text_basic.jsonl"
    assert "stream.sequence.contiguous" in transcript.read_text(encoding="utf-8")


def test_unreachable_target_fails_fast_with_one_line(pytester, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    result = pytester.runpytest("--respcheck-target", f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - t0 < 15
    # The target is a session fixture: opened once, its failure reported as every scenario's
    # setup error (the scenario could not run), with one line and no retry per scenario.
    result.assert_outcomes(errors=len(BUNDLED))
    lines = [line for line in result.stdout.lines if line.startswith("respcheck: target")]
    assert len(lines) == len(BUNDLED) and all("unreachable" in line for line in lines)
    result.stdout.no_fnmatch_line("*Traceback*")


def test_refused_refusable_scenario_is_skipped_as_unsupported(pytester):
    scen = pytester.mkdir("scenarios") / "core"
    scen.mkdir()
    (scen / "optional.yaml").write_text(
        "refusable: true\nsteps:\n  - request:\n      json: {model: '{{model}}', input: hi}\n")
    with serve(refusing_app(), "refusing server") as server:
        result = pytester.runpytest("--respcheck-target", server.base_url,
                                    "--respcheck-scenarios", str(pytester.path / "scenarios"),
                                    "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*unsupported*"])


def test_malformed_scenario_is_a_collection_error(pytester):
    scen = pytester.mkdir("scenarios") / "core"
    scen.mkdir()
    (scen / "bad.yaml").write_text("steps: [\n  - {a: 1\n")
    result = pytester.runpytest("--respcheck", "--respcheck-scenarios",
                                str(pytester.path / "scenarios"))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.yaml: invalid YAML*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_a_tiny_transcript_budget_truncates_with_a_record_saying_so(pytester):
    """The session's transcripts share one budget (the runner's TranscriptBudget): past it,
    body chunks are left out and each exchange that lost some says so in a ``truncated``
    record just before its ``end``; the scenarios are still judged on every byte."""
    budget = 2048
    result = pytester.runpytest("--respcheck", "-k", "text_basic or string_input",
                                "--respcheck-transcript-budget", f"{budget / 2**20!r}")
    result.assert_outcomes(passed=2, deselected=len(BUNDLED) - 2)
    folder = pytester.path.parent / "basetemp" / "respcheck"
    chunk_bytes = {}
    truncated = []
    # run order: core/string_input (a small JSON body, kept whole), then streaming/text_basic
    for name in ("core__string_input.jsonl", "streaming__text_basic.jsonl"):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        kinds = [r["kind"] for r in records]
        assert "request" in kinds and "end" in kinds, kinds  # what is never dropped
        chunk_bytes[name] = sum(len(line.encode()) + 1 for line, r in zip(lines, records)
                                if r["kind"] == "chunk")
        for i, r in enumerate(records):
            if r["kind"] == "truncated":
                assert records[i + 1]["kind"] == "end", kinds
                assert r["dropped_records"] > 0 and r["dropped_bytes"] > 0
                assert "--respcheck-transcript-budget" in r["reason"], r
                truncated.append(name)
    assert truncated == ["streaming__text_basic.jsonl"]
    # one budget for the session: the stream got what the first scenario left of it
    assert chunk_bytes["core__string_input.jsonl"] > 0
    assert sum(chunk_bytes.values()) <= budget, chunk_bytes


def test_the_transcript_budget_must_be_positive(pytester):
    result = pytester.runpytest("--respcheck", "--respcheck-transcript-budget", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--respcheck-transcript-budget*positive number of megabytes*"])
