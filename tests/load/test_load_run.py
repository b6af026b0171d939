"""End to end: the SSE reader does not hold events back; a short load run against the embedded
target is sane and conformant; a broken stream source yields violations by check id; bad
arguments exit 2 with one line.

Load runs are a few seconds each (this suite runs on 2 cores); benchmarks live in
loadtests/overhead.py. The load generator always runs in a subprocess (locust monkey-patches
its process for gevent), so this test process never imports locust.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from loadtests import servers
from loadtests.cli import main
from loadtests.http1 import Connection
from loadtests.observe import ExchangeObserver
from loadtests.workload import Workload
from reference_gateway.launch import RunningServer, start_embedded


@pytest.fixture(scope="module")
def mock_process():
    with servers.spawn("mock") as server:
        yield server


def test_reader_hands_over_each_event_as_it_arrives(mock_process):
    """Mock paced at 20 ms TTFT and 10 ms ITL: the measured ITL median is ~10 ms (not 0 from
    events held back and delivered in a clump), and TTFT is ~20 ms."""
    wl = Workload(api="chat", model="mock-paced:20:10", output_tokens=30, check="off")
    conn = Connection(mock_process.base_url)
    itls, ttfts = [], []
    try:
        for n in range(3):
            obs = conn.post(wl.path, wl.body(n), lambda t, w: ExchangeObserver(
                api="chat", stream=True, t_send=t, t_send_wall=w, check="off"), deadline_s=10)
            s = obs.sample
            assert s.ok, s.error
            assert s.deltas == 30 and s.output_tokens == 30
            itls += s.itls
            ttfts.append(s.ttft)
    finally:
        conn.close()
    assert 0.008 < statistics.median(itls) < 0.013, statistics.median(itls)
    assert sum(g < 0.002 for g in itls) <= len(itls) // 10  # no clumps
    assert 0.018 < statistics.median(ttfts) < 0.040


def _run(tmp_path, *args) -> tuple[int, dict, list[dict]]:
    rc = main([*args, "--report-dir", str(tmp_path), "--quiet"])
    results = json.loads((tmp_path / "results.json").read_text())
    with open(tmp_path / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    return rc, results, rows


def test_short_load_run_against_the_embedded_target(tmp_path):
    rc, results, rows = _run(tmp_path, "--duration", "3s", "--warmup", "0.5s", "--users", "4",
                             "--model", "mock-paced:20:10", "--output-tokens", "16", "--slo", "ttft:1000")
    assert rc == 0
    (stage,) = results["stages"]
    assert stage["failed"] == 0 and stage["errors"] == {}
    assert stage["violations"] == {}
    # 4 users, each request ~20 + 15 x 10 ms = 170 ms: ~23 req/s over 3 s
    assert stage["requests"] >= 30
    assert 10 < stage["request_throughput"] < 30
    assert 18 < stage["ttft_ms"]["p50"] < 100
    assert 8 < stage["itl_ms"]["p50"] < 13
    assert 8 < stage["tpot_ms"]["p50"] < 20
    assert stage["output_throughput"] == pytest.approx(stage["request_throughput"] * 16, rel=0.01)
    assert stage["goodput"] == pytest.approx(stage["request_throughput"])
    assert rows and all(r["ok"] == "1" and r["output_tokens"] == "16" and r["violations"] == "" for r in rows)
    assert len(rows[0]["itls_ms"].split()) == 15
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "TTFT" in html


def test_chat_api_and_no_stream(tmp_path):
    with start_embedded() as target:
        upstream = target.upstream.base_url
        rc, results, rows = _run(tmp_path / "chat", "--target", upstream, "--api", "chat", "--duration", "1s",
                                 "--warmup", "0.2s", "--users", "2", "--model", "mock-1", "--output-tokens", "8")
        assert rc == 0 and results["stages"][0]["requests"] > 0
        assert {r["output_tokens"] for r in rows} == {"8"}
        rc, results, rows = _run(tmp_path / "json", "--target", target.base_url, "--no-stream",
                                 "--duration", "1s", "--warmup", "0.2s", "--users", "2")
        assert rc == 0
        st = results["stages"][0]
        assert st["requests"] > 0 and st["ttft_ms"]["n"] == 0 and st["e2el_ms"]["n"] == st["completed"]


def _broken_app(good_stream: bytes) -> Starlette:
    """Replays a real stream with one text delta removed (so sequence numbers skip and the
    deltas no longer spell the done text)."""
    frames = [f + b"\n\n" for f in good_stream.split(b"\n\n") if f.strip()]
    at = next(i for i, f in enumerate(frames) if b"output_text.delta" in f)
    body = b"".join(frames[:at] + frames[at + 1:])

    async def responses(request):
        await request.body()

        async def gen():
            yield body
        return StreamingResponse(gen(), media_type="text/event-stream")

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": "broken", "object": "model"}]})

    return Starlette(routes=[Route("/v1/responses", responses, methods=["POST"]),
                             Route("/v1/models", models)])


def test_broken_stream_source_yields_counted_violations(tmp_path):
    import httpx

    with start_embedded() as target:
        good = httpx.post(target.base_url + "/responses", timeout=10,
                          json={"model": "mock-1", "input": "x", "stream": True}).content
    with RunningServer(_broken_app(good), name="broken") as broken:
        rc, results, rows = _run(tmp_path, "--target", broken.base_url, "--duration", "1s",
                                 "--warmup", "0.2s", "--users", "2")
    assert rc == 1  # MUST violations under load fail the run
    (stage,) = results["stages"]
    assert stage["failed"] == 0 and stage["requests"] > 0
    assert stage["requests_with_violations"] == stage["requests"]
    viol = stage["violations"]
    assert viol["stream.sequence.contiguous"]["level"] == "MUST"
    assert viol["stream.sequence.contiguous"]["count"] >= stage["requests"]
    assert "stream.delta.accumulates" in viol
    assert all("stream.sequence.contiguous=" in r["violations"] for r in rows)


@pytest.mark.parametrize("argv, fragment", [
    (["--users", "0"], "--users"),
    (["--users", "a,b"], "--users"),
    (["--duration", "soon"], "invalid duration"),
    (["--rate", "1,2", "--users", "4,8"], "one thing at a time"),
    (["--output-tokens", "8"], ">= 16"),
    (["--slo", "latency:5"], "bad SLO"),
    (["--no-stream", "--slo", "ttft:5"], "e2el"),
    (["--api", "soap"], "--api"),
    (["--target", "ftp://example"], "http(s) URL"),
    (["--target", "http://127.0.0.1:9/v1"], "unreachable"),
    (["--workers", "-1"], "--workers"),
])
def test_argument_errors_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    assert main([*argv, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("respcheck load: ") and fragment in err, err


def test_no_locust_in_this_process():
    assert "locust" not in sys.modules and "gevent.monkey" not in sys.modules or \
        not __import__("gevent.monkey").monkey.is_module_patched("socket")


def test_workers_ship_their_samples_to_the_master(tmp_path):
    rc, results, rows = _run(tmp_path, "--duration", "1.5s", "--warmup", "0.3s", "--users", "2",
                             "--workers", "1", "--model", "mock-paced:10:5", "--output-tokens", "16")
    assert rc == 0
    (stage,) = results["stages"]
    assert stage["requests"] > 0 and stage["failed"] == 0 and stage["violations"] == {}
    assert len(rows) >= stage["requests"]
