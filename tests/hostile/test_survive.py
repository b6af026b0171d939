"""`respcheck run` survives any server (issue 16, "Survives any server"): the self-test.

A server (tests/hostile/hostile_server.py) misbehaves on every route the harness uses: the
preflight's ``GET /models``, ``POST /responses``, ``GET`` and ``DELETE /responses/{id}``,
``/responses/compact``, ``/responses/{id}/cancel``, and the WebSocket upgrade and its frames;
in every way it knows (``MODES``: silent, headers trickled a line at a time or a byte a second,
endless, dripping, stalling, one huge event, no blank line, bad UTF-8, left open, the wrong
content type, a 1000x gzip bomb, a socket closed mid-frame). What must hold:

* each run ends inside its deadline (every scenario within the per-request deadline plus the
  time to judge what the caps let in), with exit 1 or 2 and, for 2, one line saying why;
* the preflight goes through the guarded transport and names what the server did;
* the harness's peak RSS, measured on a ``respcheck run`` subprocess, stays within the budget
  the README states (``RSS_BUDGET_MIB``) and does not grow with the number of scenarios;
* the transcripts stay within the run's transcript budget, and say where they were cut;
* a server failing every scenario the same way at the transport stops the run early (exit 2).

Small deadlines keep it quick; time bounds carry a generous margin for a noisy 2-core VM: they
prove "bounded", not speed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hostile_server import (CLOSE_MID_FRAME, DATA_FOREVER, DRIP, ENDLESS, GZIP_BOMB, HUGE_FRAME,
                            INVALID_UTF8, KEEP_OPEN, MODES, NO_BLANK_LINE, NO_HEADERS, STALL,
                            TRICKLE_BYTES, TRICKLE_HEADERS, WELL_BEHAVED, WRONG_TYPE,
                            HostileServer)

from harness.core.findings import FAIL, MUST, SKIP
from harness.faces.cli import main
from harness.run.client import Transport
from harness.run.runner import STOP_AFTER_SAME_FAILURES, FailureStreak, ScenarioOutcome
from harness.run.scenario import parse_scenario

DEADLINE_S = 1.0
# The README's memory budget ("Budgets"): the harness's peak RSS whatever the server does.
RSS_BUDGET_MIB = 300
# Judging what the caps let in (8 MiB of tiny events at worst) takes seconds on a loaded VM;
# a scenario's duration is its requests' deadlines plus that, never the server's whim.
JUDGE_MARGIN_S = 8.0
# open_target (the suite's MCP servers), imports, reports: the fixed cost of one run.
RUN_OVERHEAD_S = 15.0
RESPCHECK = [sys.executable, "-m", "harness.faces.cli"]
# The child reports its own peak RSS as it exits: VmHWM of /proc/self/status, the high-water
# mark of its own address space. Not ``wait4``'s ru_maxrss: at exec the kernel folds the old
# address space's high-water mark into it, and a child forked (or vforked) from this test
# process starts from the test process's RSS: after a few hundred tests in one pytest process
# every child measured the same 333 MiB, the test process's own peak.
REPORT_PEAK_RSS = """
import atexit, os, runpy, sys
def report():
    with open('/proc/self/status') as status:
        peak = next(line for line in status if line.startswith('VmHWM:'))
    with open(os.environ['RESPCHECK_TEST_PEAK_FILE'], 'w') as out:
        out.write(peak.split()[1])  # kB
atexit.register(report)
sys.argv = ['respcheck', *sys.argv[1:]]
runpy.run_module('harness.faces.cli', run_name='__main__')
"""
CHILD_LIMIT_S = 300.0  # a child run still going by then is killed (and the test fails)
ROUTE_STEPS = {
    "create": {"json": {"model": "{{model}}", "input": "hi", "stream": True}},
    "get": {"method": "GET", "path": "/responses/resp_hostile"},
    "delete": {"method": "DELETE", "path": "/responses/resp_hostile"},
    "compact": {"method": "POST", "path": "/responses/compact",
                "json": {"model": "{{model}}", "input": "hi"}},
    "cancel": {"method": "POST", "path": "/responses/resp_hostile/cancel"},
    "ws": {"json": {"model": "{{model}}", "input": "hi"}},
}


def write_suite(root: Path, scenarios: dict[str, list[dict]], *, ws: set[str] = frozenset()) -> Path:
    """``{"feature/name": [step requests]}`` as scenario files under ``root``."""
    for sid, requests in scenarios.items():
        feature = sid.split("/")[0]
        raw = {"title": sid, "feature": feature,
               "steps": [{"name": f"s{n}", "request": req, "expect": {"status": 200}}
                         for n, req in enumerate(requests)]}
        if sid in ws:
            raw["transport"] = "ws"
        path = root / f"{sid}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str, float, str]:
    """``respcheck run ARGS`` in this process: exit code, stderr, seconds, stdout."""
    t0 = time.monotonic()
    code = main(["run", *args])
    elapsed = time.monotonic() - t0
    captured = capsys.readouterr()
    return code, captured.err, elapsed, captured.out


def verdict_check(out: str, summary: dict) -> str:
    """An exit-1 run's one clear line: stdout's last line is the verdict, with the number of
    failed MUST checks and the check that failed most (a tie may name any of the tied); returns
    the check it names."""
    last = out.strip().splitlines()[-1]
    must = Counter(r["check"] for r in summary["results"]
                   if r["status"] == FAIL and r["level"] == MUST)
    n = sum(must.values())
    assert last.startswith(f"FAIL: {n} MUST check{'' if n == 1 else 's'} failed"), last
    named = re.search(r"(?:most common|failed): (\S+) \(", last)
    assert named and must[named.group(1)] == max(must.values()), (last, must)
    return named.group(1)


def peak_rss_run(args: list[str], cwd: Path) -> tuple[int, str, float]:
    """``respcheck run ARGS`` as a child process: exit code, stderr, and its peak RSS in MiB as
    the child itself reports it (``REPORT_PEAK_RSS``). Killed if it outlives CHILD_LIMIT_S."""
    handle, name = tempfile.mkstemp(prefix="respcheck-peak-rss-")
    os.close(handle)
    peak_file = Path(name)
    proc = subprocess.Popen([sys.executable, "-c", REPORT_PEAK_RSS, "run", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RESPCHECK_TEST_PEAK_FILE": str(peak_file)})
    killer = threading.Timer(CHILD_LIMIT_S, proc.kill)
    killer.start()
    try:
        err = proc.stderr.read()
        proc.wait()
    finally:
        killer.cancel()
        proc.stderr.close()
    try:
        return proc.returncode, err, int(peak_file.read_text()) / 1024
    finally:
        peak_file.unlink()


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("respcheck: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


# -- the preflight: GET /models ------------------------------------------------------------
PREFLIGHT_WORDS = {
    NO_HEADERS: "accepted the connection but GET /models sent no response headers within 1 s",
    TRICKLE_HEADERS: "accepted the connection but GET /models sent no response headers within 1 s",
    TRICKLE_BYTES: "accepted the connection but GET /models sent no response headers within 1 s",
    ENDLESS: "answered GET /models with HTTP 200 but an endless body",
    DATA_FOREVER: "answered GET /models with HTTP 200 but an endless body",
    HUGE_FRAME: "answered GET /models with HTTP 200 but an endless body",
    DRIP: "answered GET /models with HTTP 200 but a body that did not end in time",
    STALL: "answered GET /models with HTTP 200 but a body that did not end in time",
    GZIP_BOMB: "answered GET /models with HTTP 200 but the body is compressed "
               "(Content-Encoding: gzip)",
    # a body that ends (or is left open after a whole event stream) but lists no model
    KEEP_OPEN: "/models gave HTTP 200 and no model; pass --model NAME",
    NO_BLANK_LINE: "/models gave HTTP 200 and no model; pass --model NAME",
    INVALID_UTF8: "/models gave HTTP 200 and no model; pass --model NAME",
    WRONG_TYPE: "/models gave HTTP 200 and no model; pass --model NAME",
    CLOSE_MID_FRAME: "/models gave HTTP 200 and no model; pass --model NAME",
}


def test_every_mode_has_its_preflight_words():
    assert set(PREFLIGHT_WORDS) == set(MODES)


@pytest.mark.parametrize("mode", MODES)
def test_the_preflight_names_what_models_did(mode, tmp_path, capsys):
    """No --model: the run needs /models, so each misbehaviour there is exit 2, one line that
    names it, within the preflight's deadline (the run's --deadline)."""
    with HostileServer({"models": mode}) as server:
        code, err, elapsed, out = run_cli(["--target", server.base_url, "--deadline", f"{DEADLINE_S:g}",
                                      "--report-dir", str(tmp_path)], capsys)
    assert code == 2, err
    line = one_error_line(err)
    assert PREFLIGHT_WORDS[mode] in line, line
    assert elapsed < DEADLINE_S + RUN_OVERHEAD_S, elapsed


def test_the_preflight_says_connection_refused(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, err, _, out = run_cli(["--target", f"http://127.0.0.1:{port}/v1", "--report-dir",
                            str(tmp_path)], capsys)
    assert code == 2
    assert f"target http://127.0.0.1:{port}/v1 is unreachable: connection refused" \
        in one_error_line(err)


def test_with_a_model_given_a_bad_models_route_is_said_and_the_run_goes_on(tmp_path, capsys):
    """/models is optional: with --model, its misbehaviour is one notice and the run judges
    the rest (here a well-behaved POST /responses)."""
    suite = write_suite(tmp_path / "suite", {"routes/create": [ROUTE_STEPS["create"]]})
    with HostileServer({"models": ENDLESS}) as server:
        code, err, _, out = run_cli(["--target", server.base_url, "--model", WELL_BEHAVED,
                                "--scenarios", str(suite), "--deadline", f"{DEADLINE_S:g}",
                                "--report-dir", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert "answered GET /models with HTTP 200 but an endless body" in err
    assert f"going on with --model {WELL_BEHAVED}" in err


# -- every other route ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_every_route_misbehaving_ends_in_its_deadline(mode, tmp_path, capsys):
    """Every route but /models misbehaves (the preflight must pass to get this far): one
    scenario per route, each failed at a MUST within the deadline plus judging; the run ends
    with exit 1, or 2 with the early stop's one line when the failures are all alike."""
    routes = [r for r in ROUTE_STEPS]
    suite = write_suite(tmp_path / "suite", {f"routes/{r}": [ROUTE_STEPS[r]] for r in routes},
                        ws={"routes/ws"})
    report = tmp_path / "report"
    with HostileServer({r: mode for r in routes}) as server:
        code, err, elapsed, out = run_cli(["--target", server.base_url, "--model", WELL_BEHAVED,
                                      "--scenarios", str(suite), "--deadline", f"{DEADLINE_S:g}",
                                      "--report-dir", str(report)], capsys)
    assert code in (1, 2), err
    assert "Traceback" not in err, err
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    if code == 2:
        assert "stopped early" in one_error_line(err)
    else:
        verdict_check(out, summary)
    scenarios = {s["id"]: s for s in summary["scenarios"]}
    run = [s for s in scenarios.values() if s["status"] != SKIP]
    assert len(run) >= min(len(routes), STOP_AFTER_SAME_FAILURES)
    for s in scenarios.values():
        if s["status"] == SKIP:
            assert code == 2  # only the early stop leaves scenarios unrun
            continue
        assert s["status"] == FAIL, s
        assert s["duration_s"] < DEADLINE_S + JUDGE_MARGIN_S, s
        must = [r for r in summary["results"] if r["scenario"] == s["id"]
                and r["status"] == FAIL and r["level"] == MUST]
        assert must and all(r["message"] for r in must), s["id"]
    assert elapsed < len(routes) * (DEADLINE_S + JUDGE_MARGIN_S) + RUN_OVERHEAD_S


def test_a_gzip_bomb_is_never_decoded():
    """The cap applies to the bytes held: the harness asks for identity, and a compressed
    answer is refused at its headers, not read (let alone inflated to its 100 MB)."""
    with HostileServer({"create": GZIP_BOMB}) as server, \
            Transport(server.base_url, deadline_s=DEADLINE_S) as transport:
        ex = transport.request("s", "POST", "/responses", body=b'{"model":"x","stream":true}',
                               headers={"content-type": "application/json"})
    assert ex.request_headers["accept-encoding"] == "identity"
    assert ex.status == 200 and ex.cut and ex.chunks == []
    assert ex.error.startswith("the body is compressed (Content-Encoding: gzip)"), ex.error


# -- memory and transcripts ----------------------------------------------------------------
@pytest.fixture(scope="module")
def flood_server():
    """Every POST /responses answered with one 100 MB event."""
    with HostileServer({"create": HUGE_FRAME}) as server:
        yield server


def flood_run(server: HostileServer, tmp_path: Path, n: int, budget_mib: float
              ) -> tuple[int, str, float, Path]:
    suite = write_suite(tmp_path / f"suite{n}", {f"flood/s{i:02d}": [ROUTE_STEPS["create"]]
                                                 for i in range(n)})
    report = tmp_path / f"report{n}"
    code, err, peak = peak_rss_run(
        ["--target", server.base_url, "--model", WELL_BEHAVED, "--scenarios", str(suite),
         "--deadline", "5", "--keep-going", "--transcript-budget", f"{budget_mib:g}",
         "--report-dir", str(report)], cwd=Path(__file__).resolve().parents[2])
    return code, err, peak, report


def test_memory_does_not_grow_with_the_scenarios(flood_server, tmp_path):
    """5 and then 20 scenarios, each answered with a 100 MB event: the peak RSS of the
    harness is within the budget both times and the same give or take a few MiB. Before the
    fix, each scenario's exchanges (the event up to the cap) were kept to the end of the run:
    1.08 GB for the 64 bundled scenarios."""
    code5, err5, peak5, _ = flood_run(flood_server, tmp_path, 5, 64)
    code20, err20, peak20, report = flood_run(flood_server, tmp_path, 20, 64)
    assert (code5, code20) == (1, 1), (err5, err20)
    assert peak5 < RSS_BUDGET_MIB and peak20 < RSS_BUDGET_MIB, (peak5, peak20)
    # 15 more scenarios, each recording 4 MiB (the frame cap): a leak of even one exchange per
    # scenario would add 60 MiB
    assert peak20 - peak5 < 24, (peak5, peak20)
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert {s["status"] for s in summary["scenarios"]} == {FAIL}


def test_the_transcript_budget_holds_and_says_where_it_cut(flood_server, tmp_path):
    budget_mib = 10
    code, err, _, report = flood_run(flood_server, tmp_path, 6, budget_mib)
    assert code == 1, err
    files = sorted((report / "transcripts").iterdir())
    assert len(files) == 6
    total = sum(f.stat().st_size for f in files)
    # the budget counts every record; the ones always written (request, end, findings,
    # the truncation notes) are what may pass it: a few KB per scenario
    assert total <= budget_mib * 2**20 + 6 * 16 * 1024, total
    notes = []
    for f in files:
        records = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
        kinds = [r["kind"] for r in records]
        assert kinds[0] == "request" and "end" in kinds  # every transcript says what was sent
        notes += [r for r in records if r["kind"] == "truncated"]
    assert notes, "no transcript says it was cut"
    assert all(n["dropped_bytes"] > 0 and "transcript budget" in n["reason"] for n in notes)
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert summary["transcripts_truncated_bytes"] == sum(n["dropped_bytes"] for n in notes)


def test_the_worst_scenario_stays_within_the_memory_budget(tmp_path):
    """One scenario whose five steps each get a flood of tiny events (the costliest thing to
    judge): the scenario's byte budget bounds what is recorded, and with it the judging."""
    steps = [ROUTE_STEPS[r] for r in ("create", "get", "compact", "cancel", "delete")]
    suite = write_suite(tmp_path / "suite", {"flood/all_routes": steps,
                                             "flood/all_routes_again": steps})
    with HostileServer({r: ENDLESS for r in ("create", "get", "compact", "cancel",
                                             "delete")}) as server:
        code, err, peak = peak_rss_run(
            ["--target", server.base_url, "--model", WELL_BEHAVED, "--scenarios", str(suite),
             "--deadline", "5", "--report-dir", str(tmp_path / "report")],
            cwd=Path(__file__).resolve().parents[2])
    assert code == 1, err
    assert peak < RSS_BUDGET_MIB, peak


# -- the early stop ------------------------------------------------------------------------
def test_a_server_silent_everywhere_stops_the_run_early(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite", {
        **{f"a/s{i}": [ROUTE_STEPS["create"]] for i in range(3)},
        **{f"b/s{i}": [ROUTE_STEPS["create"]] for i in range(5)}})
    report = tmp_path / "report"
    with HostileServer({"create": NO_HEADERS}) as server:
        code, err, elapsed, out = run_cli(["--target", server.base_url, "--model", WELL_BEHAVED,
                                      "--scenarios", str(suite), "--deadline", "0.5",
                                      "--report-dir", str(report)], capsys)
        assert code == 2, err
        line = one_error_line(err)
        assert (f"stopped early: {STOP_AFTER_SAME_FAILURES} scenarios in a row failed the same "
                "way at the transport (no response headers within 0.5 s (the deadline))") in line
        assert "--keep-going" in line
        summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
        status = [s["status"] for s in summary["scenarios"]]
        assert status == [FAIL] * STOP_AFTER_SAME_FAILURES + [SKIP] * 3
        assert summary["stopped"] in line
        # --keep-going runs them all
        code, err, _, out = run_cli(["--target", server.base_url, "--model", WELL_BEHAVED,
                                "--scenarios", str(suite), "--deadline", "0.5", "--keep-going",
                                "--report-dir", str(report)], capsys)
    assert code == 1, err
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert [s["status"] for s in summary["scenarios"]] == [FAIL] * 8
    # every scenario failed at the transport: the last line says so, and why
    assert verdict_check(out, summary).startswith("transport.")
    assert "no response headers within 0.5 s" in out.strip().splitlines()[-1]


def _outcome(feature: str, error: str | None) -> ScenarioOutcome:
    from harness.core.transcript import Exchange

    sc = parse_scenario({"title": "t", "feature": feature, "steps": [
        {"name": "s", "request": {"json": {"model": "m"}}}]}, default_id=f"{feature}/t",
        source="test")
    ex = Exchange("s", "POST", "http://x/v1/responses", {}, b"", error=error)
    return ScenarioOutcome(sc, FAIL if error else "pass", [], [ex])


def test_the_streak_needs_the_same_failure_across_features():
    """A server that hangs on one feature only is not stopped: its other features are still
    judged. Numbers do not make failures different; words do."""
    one_feature = FailureStreak()
    for _ in range(10):
        one_feature.add(_outcome("tools", "no response headers within 60 s (the deadline)"))
    assert one_feature.stop_reason(features_in_run=3) is None
    assert one_feature.stop_reason(features_in_run=1) is not None  # --only tools
    mixed = FailureStreak()
    for i in range(STOP_AFTER_SAME_FAILURES):
        mixed.add(_outcome(f"f{i}", f"stream exceeded the {i + 1}000-byte cap after {i}.5 s"))
    assert mixed.stop_reason(features_in_run=5) is not None
    broken = FailureStreak()
    for i in range(STOP_AFTER_SAME_FAILURES * 2):
        broken.add(_outcome(f"f{i}", None if i % 4 == 3 else "connection refused"))
        assert broken.stop_reason(features_in_run=9) is None
    other = FailureStreak()
    for i in range(STOP_AFTER_SAME_FAILURES * 2):
        other.add(_outcome(f"f{i}", "connection refused" if i % 2 else "no response headers"))
    assert other.stop_reason(features_in_run=9) is None


def test_the_rows_kept_for_the_summary_are_bounded():
    """A finding may quote what the server sent (a schema error repeats the instance: a 4 MiB
    string); the row kept until the run ends holds at most MAX_ROW_TEXT_CHARS of it, and says
    how much was left out. Short messages and plain evidence are kept as they are."""
    from harness.core.catalogue import load_catalogue
    from harness.core.findings import FindingLog
    from harness.run.runner import MAX_ROW_TEXT_CHARS, _rows

    huge = "x" * (4 * 2**20)
    log = FindingLog()
    message = f"{huge!r} is not of type 'integer'"
    log.fail("schema.response", message, path="$.output",
             actual=huge, items=[huge], sequence_number=7)
    log.fail("sse.limits", "no terminal event within the 1 s deadline")
    sc = _outcome("core", None).scenario
    rows = {r.check: r for r in _rows(sc, log, load_catalogue("openai"), "t.jsonl")}
    schema = rows["schema.response"]
    assert len(schema.message) < MAX_ROW_TEXT_CHARS + 100
    assert schema.message == (message[:MAX_ROW_TEXT_CHARS]
                              + f"... ({len(message) - MAX_ROW_TEXT_CHARS} more characters)")
    assert len(schema.evidence["actual"]) < MAX_ROW_TEXT_CHARS + 100
    assert isinstance(schema.evidence["items"], str) and len(schema.evidence["items"]) < \
        MAX_ROW_TEXT_CHARS + 100
    assert schema.evidence["path"] == "$.output" and schema.evidence["sequence_number"] == 7
    assert rows["sse.limits"].message == "no terminal event within the 1 s deadline"
