"""Observability (issue 8): /metrics, JSON logs, OpenTelemetry traces; multiprocess metrics.

Every gateway here is a real server on 127.0.0.1 in front of the embedded mock upstream, whose
fault models make each kind of upstream failure on purpose. Each test reads the metrics it
judges as deltas of one gateway's own scrape (``scrape``, parsed with prometheus_client's own
parser), so nothing depends on what other tests did.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.targets.mcp_servers import start_search_server, start_tools_server
from reference_gateway import logs, observe, tracing
from reference_gateway.builtin.config import BuiltinConfig, McpServer, WebSearchProfile
from reference_gateway.config import GatewayConfig
from reference_gateway.emitter import Emitter
from reference_gateway.launch import start_gateway

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 30.0  # a subprocess gateway's start, on a busy 2-core machine
CREATE = ("/v1/responses", "POST")
KEY = "sk-observability-" + "0123456789abcdef" * 2


# -- helpers --------------------------------------------------------------------------------

def origin(c: httpx.Client) -> str:
    return f"{c.base_url.scheme}://{c.base_url.host}:{c.base_url.port}"


def scrape(c: httpx.Client | str) -> dict[tuple[str, frozenset], float]:
    url = (c if isinstance(c, str) else origin(c)) + "/metrics"
    r = httpx.get(url, timeout=5.0)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def requests(samples: dict, status: int, route: str = CREATE[0], method: str = CREATE[1]) -> float:
    return value(samples, "reference_gateway_requests_total", route=route, method=method, status=str(status))


def wait_for(predicate, *, deadline_s: float = 5.0, what: str = "condition"):
    end = time.monotonic() + deadline_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {deadline_s} s")
        time.sleep(0.02)


def read_until_delta(lines) -> str:
    """Read ``lines`` (an event stream's ``iter_lines()``, held by the caller: an abandoned one
    closes the response) up to the first output_text delta; the response's id."""
    response_id = None
    for line in lines:
        if line.startswith("data:") and response_id is None:
            response_id = json.loads(line[5:])["response"]["id"]
        if line == "event: response.output_text.delta":
            return response_id
    raise AssertionError("the stream ended before its first delta")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- /metrics -------------------------------------------------------------------------------

def test_a_scrape_shows_exactly_what_happened(make_gateway, stream):
    c = make_gateway(stream_first_token_timeout_s=0.5, request_timeout_s=1.0)
    before = scrape(c)
    assert c.post("/responses", json={"model": "mock-1", "input": "hi"}).status_code == 200
    r, _, events = stream(c, {"model": "mock-1", "input": "hi"})
    assert r.status_code == 200 and events[-1]["type"] == "response.completed"
    assert c.post("/responses", json={"model": "mock-fault:5xx", "input": "hi"}).status_code == 502
    assert c.post("/responses", json={"model": "mock-error", "input": "hi", "stream": True}).status_code == 502
    assert c.post("/responses", json={"model": "mock-fault:bad-json", "input": "hi"}).status_code == 502
    r, _, events = stream(c, {"model": "mock-fault:truncated", "input": "hi"})  # deltas, then cut
    assert r.status_code == 200 and events[-1]["type"] == "response.failed"
    r, _, events = stream(c, {"model": "mock-fault:stall-first:3", "input": "hi"})  # headers, then silence
    assert r.status_code == 200 and events[-1]["type"] == "response.failed"
    assert c.post("/responses", json={"model": "mock-fault:stall-first:3", "input": "hi"}).status_code == 504
    assert c.post("/responses", json={"model": "mock-fault:no-such-mode", "input": "hi"}).status_code == 400
    after = scrape(c)

    assert requests(after, 200) - requests(before, 200) == 4
    assert requests(after, 502) - requests(before, 502) == 3
    assert requests(after, 504) - requests(before, 504) == 1
    assert requests(after, 400) - requests(before, 400) == 1
    assert requests(after, 200, "/metrics", "GET") - requests(before, 200, "/metrics", "GET") == 1
    duration = "reference_gateway_request_duration_seconds_count"
    assert delta(before, after, duration, streamed="yes") == 4  # the stream flag, refused or not
    assert delta(before, after, duration, streamed="no") == 5
    # Only streams that sent an output delta have a time to first token (the truncated one did).
    assert delta(before, after, "reference_gateway_time_to_first_token_seconds_count") == 2
    assert value(after, "reference_gateway_streams_in_flight") == 0
    errors = "reference_gateway_upstream_errors_total"
    assert {kind: delta(before, after, errors, kind=kind)
            for kind in ("timeout", "connect", "status_5xx", "status_4xx", "protocol")} == \
        {"timeout": 2, "connect": 0, "status_5xx": 2, "status_4xx": 1, "protocol": 2}


def test_an_unreachable_upstream_counts_as_connect():
    closed = free_port()
    with start_gateway(GatewayConfig(upstream_url=f"http://127.0.0.1:{closed}/v1")) as server:
        r = httpx.post(server.base_url + "/responses", json={"model": "m", "input": "hi"}, timeout=5.0)
        assert r.status_code == 502
        after = scrape(server.origin)
    assert value(after, "reference_gateway_upstream_errors_total", kind="connect") == 1
    assert requests(after, 502) == 1


def test_the_in_flight_gauge_follows_a_held_stream(make_gateway):
    c = make_gateway()
    body = {"model": "mock-paced:0:100", "input": "hi", "stream": True, "max_output_tokens": 16}
    with c.stream("POST", "/responses", json=body) as r:
        read_until_delta(lines := r.iter_lines())
        during = scrape(c)
        assert value(during, "reference_gateway_streams_in_flight") == 1
        assert value(during, "reference_gateway_time_to_first_token_seconds_count") == 1
        ttft = value(during, "reference_gateway_time_to_first_token_seconds_sum")
        for _ in lines:
            pass
    assert 0 < ttft < 1.0  # first token at once (TTFT 0 ms upstream), the rest 100 ms apart
    wait_for(lambda: value(scrape(c), "reference_gateway_streams_in_flight") == 0, what="gauge back to 0")
    after = scrape(c)
    assert value(after, "reference_gateway_request_duration_seconds_sum", streamed="yes") > 1.4  # 15 x 100 ms


def test_metrics_need_no_api_key_and_can_be_off(make_gateway):
    c = make_gateway(api_keys=(KEY,))
    assert c.post("/responses", json={"model": "mock-1", "input": "hi"}).status_code == 401
    r = httpx.get(origin(c) + "/metrics", timeout=5.0)  # no Authorization header
    assert r.status_code == 200
    samples = scrape(c)
    assert requests(samples, 401) == 1  # counted under its route, though stopped before routing
    assert c.get("/models").status_code == 401  # every other route still needs the key

    off = make_gateway(metrics=False)
    r = httpx.get(origin(off) + "/metrics", timeout=5.0)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_no_middleware_when_nothing_is_observed(target):
    telemetry = observe.Telemetry(GatewayConfig(upstream_url=target.upstream.base_url, metrics=False))
    assert telemetry.middleware([]) == [] and telemetry.routes() == []


# -- built-in tools: counted and traced -----------------------------------------------------

@pytest.fixture
def memory_spans():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def server_span(exporter, response_id: str):
    def find():
        for span in exporter.get_finished_spans():
            if span.kind.name == "SERVER" and span.attributes.get("gen_ai.response.id") == response_id:
                return span
        return None

    return wait_for(find, what=f"the request span of {response_id}")


def children(exporter, parent) -> list:
    return [s for s in exporter.get_finished_spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_spans_of_a_request_and_its_upstream_call(make_gateway, memory_spans, stream):
    provider, exporter = memory_spans
    c = make_gateway(tracer_provider=provider)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with c.stream("POST", "/responses", json={"model": "mock-1", "input": "hi", "stream": True},
                  headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}) as r:
        response_id = read_until_delta(lines := r.iter_lines())
        for _ in lines:
            pass
    span = server_span(exporter, response_id)
    assert span.name == "POST /v1/responses"
    assert dict(span.attributes).items() >= {
        "gen_ai.request.model": "mock-1", "gateway.stream": True, "gen_ai.response.id": response_id,
        "http.response.status_code": 200, "http.route": "/v1/responses", "gateway.response.status": "completed",
        "http.request.method": "POST"}.items()
    assert format(span.context.trace_id, "032x") == trace_id  # joined the client's trace
    assert format(span.parent.span_id, "016x") == parent_id
    upstream, = wait_for(lambda: children(exporter, span), what="the upstream span")
    assert upstream.name == "POST /v1/chat/completions" and upstream.kind.name == "CLIENT"
    assert upstream.context.trace_id == span.context.trace_id
    assert upstream.attributes["http.response.status_code"] == 200
    assert upstream.end_time <= span.end_time  # the whole upstream stream, inside the request

    r = c.post("/responses", json={"model": "mock-fault:5xx", "input": "hi"})
    assert r.status_code == 502
    failed = wait_for(lambda: [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"
                               and s.attributes.get("http.response.status_code") == 502], what="the 502 span")[0]
    assert failed.status.status_code.name == "ERROR"
    assert [(e.name, dict(e.attributes)) for e in failed.events] == [("upstream_error", {"kind": "status_5xx"})]
    call, = children(exporter, failed)
    assert call.attributes["http.response.status_code"] == 503 and call.status.status_code.name == "ERROR"


def test_builtin_tool_calls_are_counted_and_traced(target, memory_spans, stream):
    provider, exporter = memory_spans
    with start_tools_server() as tools, start_search_server() as search:
        builtin = BuiltinConfig(servers={"search": McpServer("search", search.url)}, allow_server_urls=(tools.url,),
                                web_search_profiles={"test": WebSearchProfile("test", "search", "search")})
        with start_gateway(GatewayConfig(upstream_url=target.upstream.base_url, builtin=builtin,
                                         web_search_profile="test", tracer_provider=provider)) as server:
            c = httpx.Client(base_url=server.base_url, timeout=20.0)
            mcp = {"type": "mcp", "server_label": "calc", "server_url": tools.url, "require_approval": "never"}
            before = scrape(c)
            ids = []
            for name in ("add", "fail"):
                r, _, events = stream(c, {"model": "mock-1", "input": name, "tools": [mcp],
                                          "tool_choice": {"type": "mcp", "server_label": "calc", "name": name}})
                assert r.status_code == 200 and events[-1]["type"] == "response.completed"
                ids.append(events[-1]["response"]["id"])
            r = c.post("/responses", json={"model": "mock-1", "input": "news", "tools": [{"type": "web_search"}],
                                           "tool_choice": {"type": "web_search_preview"}})
            assert r.status_code == 200
            ids.append(r.json()["id"])
            after = scrape(c)
            c.close()
    calls = "reference_gateway_builtin_tool_calls_total"
    assert {(k, o): delta(before, after, calls, kind=k, outcome=o)
            for k in ("mcp_call", "web_search_call", "code_interpreter_call") for o in ("completed", "failed")} == \
        {("mcp_call", "completed"): 1, ("mcp_call", "failed"): 1, ("web_search_call", "completed"): 1,
         ("web_search_call", "failed"): 0, ("code_interpreter_call", "completed"): 0,
         ("code_interpreter_call", "failed"): 0}
    for response_id, tool, outcome in zip(ids, ("add", "fail", "web_search"), ("completed", "failed", "completed")):
        request = server_span(exporter, response_id)
        spans = children(exporter, request)
        tool_spans = [s for s in spans if s.name.startswith("execute_tool")]
        assert [s.name for s in tool_spans] == [f"execute_tool {tool}"]
        assert tool_spans[0].attributes["gateway.tool.outcome"] == outcome
        assert tool_spans[0].attributes["gen_ai.tool.call.id"].startswith(("mcp_", "ws_"))
        # Two upstream turns: the model's tool call, then its answer to the tool's output.
        assert [s.name for s in spans if s.kind.name == "CLIENT"] == ["POST /v1/chat/completions"] * 2


def test_tracing_is_on_only_when_the_environment_asks(monkeypatch):
    assert not tracing.requested({})
    assert tracing.requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing.requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not tracing.requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.open_tracing() is None
    provider = tracing.provider_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert provider is not None  # an OTLP/HTTP exporter, built, nothing sent
    assert provider.resource.attributes["service.name"] == "reference-gateway"
    provider.shutdown()
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # the SDK not installed
    assert tracing.provider_from_environment({"OTEL_TRACES_EXPORTER": "console"}) is None


# -- JSON logs ------------------------------------------------------------------------------

@pytest.fixture
def json_logging():
    """Undo what ``logs.configure("json")`` does to the process's loggers."""
    names = ("", *logs.UVICORN_LOGGERS, *logs.CHATTY_LOGGERS)
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_log_lines_carry_the_response_id(make_gateway, json_logging, capsys, monkeypatch, stream):
    c = make_gateway(log_format="json")
    capsys.readouterr()
    body = c.post("/responses", json={"model": "mock-1", "input": "hi"}).json()
    _, _, events = stream(c, {"model": "mock-1", "input": "hi"})
    streamed_id = events[0]["response"]["id"]
    assert c.get(f"/responses/{body['id']}").status_code == 200

    def broken(self, delta):
        raise RuntimeError("a relay bug, on purpose")

    monkeypatch.setattr(Emitter, "chat_delta", broken)
    _, _, events = stream(c, {"model": "mock-1", "input": "hi"})
    broken_id = events[0]["response"]["id"]
    monkeypatch.undo()
    lines: list[dict] = []

    def all_lines() -> bool:  # the access line of a stream comes once its last byte is sent
        lines.extend(json_lines(capsys.readouterr().err))
        return sum(line["logger"] == logs.ACCESS_LOGGER for line in lines) >= 4 and \
            any(line["level"] == "error" for line in lines)

    wait_for(all_lines, what="four access lines and an error line")
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys()
        assert line["ts"].endswith("Z") and "T" in line["ts"]
    access = [line for line in lines if line["logger"] == logs.ACCESS_LOGGER]
    assert sorted((a["method"], a["route"], a["status"], a["response_id"]) for a in access) == sorted([
        ("POST", "/v1/responses", 200, body["id"]), ("POST", "/v1/responses", 200, streamed_id),
        ("GET", "/v1/responses/{response_id}", 200, body["id"]), ("POST", "/v1/responses", 200, broken_id)])
    assert all(a["level"] == "info" and a["duration_ms"] > 0 for a in access)
    failure, = [line for line in lines if line["level"] == "error"]
    assert failure["response_id"] == broken_id and failure["message"] == f"stream of {broken_id} failed"
    assert "RuntimeError: a relay bug, on purpose" in failure["exception"]


def test_the_json_flag_makes_every_stderr_line_json(target, tmp_path):
    port = free_port()
    err = tmp_path / "gateway.log"
    with open(err, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "reference_gateway", "--upstream", target.upstream.base_url,
                                 "--port", str(port), "--db", ":memory:", "--log-format", "json"],
                                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base), deadline_s=DEADLINE_S, what="the gateway")
        created = httpx.post(base + "/v1/responses", json={"model": "mock-1", "input": "hi"}, timeout=5.0).json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    lines = err.read_text().splitlines()
    parsed = [json.loads(line) for line in lines if line.strip()]  # every line, or this raises
    assert any(p["message"].startswith("reference gateway on http://") for p in parsed)
    assert any(p["logger"].startswith("uvicorn") for p in parsed)  # uvicorn's own lines too
    assert not any(p["logger"] == "httpx" for p in parsed)  # no second line per upstream call
    access = [p for p in parsed if p["logger"] == logs.ACCESS_LOGGER and p.get("route") == "/v1/responses"]
    assert [(a["status"], a["response_id"]) for a in access] == [(200, created["id"])]


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


# -- several processes, one multiprocess folder ---------------------------------------------

def test_two_processes_share_their_metrics(target, tmp_path):
    """Two gateway processes write to one PROMETHEUS_MULTIPROC_DIR (as the workers of
    ``--workers N`` do); a scrape of either shows the sum, the in-flight gauge only for live
    processes, even one killed outright."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    procs, bases = [], []
    try:
        for n in range(2):
            port = free_port()
            log_file = open(tmp_path / f"gateway{n}.log", "wb")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "reference_gateway", "--upstream", target.upstream.base_url,
                 "--port", str(port), "--db", ":memory:", "--upstream-wait", "0"],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file))
            log_file.close()
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            wait_for(lambda: _healthy(base), deadline_s=DEADLINE_S, what=f"the gateway on {base}")
        for base, count in zip(bases, (2, 1)):
            for _ in range(count):
                r = httpx.post(base + "/v1/responses", json={"model": "mock-1", "input": "hi"}, timeout=5.0)
                assert r.status_code == 200
        one, other = scrape(bases[0]), scrape(bases[1])
        assert requests(one, 200) == requests(other, 200) == 3
        assert requests(one, 200, "/health", "GET") >= 2  # both processes' health checks

        body = {"model": "mock-paced:0:100", "input": "hi", "stream": True, "max_output_tokens": 16}
        with httpx.Client(timeout=10.0) as c0, httpx.Client(timeout=10.0) as c1:
            with c0.stream("POST", bases[0] + "/v1/responses", json=body) as r0, \
                    c1.stream("POST", bases[1] + "/v1/responses", json=body) as r1:
                read_until_delta(lines0 := r0.iter_lines())
                read_until_delta(lines1 := r1.iter_lines())
                assert value(scrape(bases[0]), "reference_gateway_streams_in_flight") == 2
                assert value(scrape(bases[0]), "reference_gateway_time_to_first_token_seconds_count") == 2
                procs[1].kill()  # mid-stream: its gauge file stays, with 1 in it
                procs[1].wait(10)
                assert value(scrape(bases[0]), "reference_gateway_streams_in_flight") == 1
                for _ in lines0:
                    pass
                del lines1
        wait_for(lambda: value(scrape(bases[0]), "reference_gateway_streams_in_flight") == 0,
                 what="the gauge back to 0")
        assert requests(scrape(bases[0]), 200) == 4  # the dead process's counts stay in the sum
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
