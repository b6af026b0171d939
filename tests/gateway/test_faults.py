"""The gateway in front of an upstream that fails on purpose (mock_upstream's ``mock-fault:*``).

For every fault mode, and for an upstream that refuses connections:

- non-streamed: a 502 (``upstream_error``) or 504 (``upstream_timeout``) error envelope, within
  the configured deadline (and, for a timeout, not before it), judged by the harness's own
  envelope check;
- streamed: a 200 stream whose last events are ``error`` then ``response.failed`` with
  ``response.error`` set, that then closes, within the deadline, and that the harness's stream
  checker finds conformant (no findings). When the upstream fails before its stream opens (a
  5xx, a refused connection) nothing has been sent yet, so the answer is a 502 envelope, not a
  stream;
- the store: nothing is ever left ``queued``/``in_progress``; a failed streamed response (store
  true) is stored ``failed`` with its error, exactly as the stream's ``response.failed`` had it;
  a failed non-streamed one is not stored (its client got an envelope, no id).

A client that goes away makes the gateway drop its upstream request within 1 s (the mock
records when each of its requests was cancelled) in every phase: before the upstream answered
(streamed or not), with a non-streamed answer half read, and mid-stream, where the response is
stored as ``failed`` ("The client disconnected ...").

Also here: one verdict for an answer with no ``finish_reason`` (streamed or not); the default
stream deadlines (the non-streamed one); an upstream 429 passed on with its back-off headers.

Deadlines are small (see ``DEADLINES``); the bounds on elapsed time add ``MARGIN_S`` for this
noisy 2-core VM.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time

import httpx
import pytest

from harness.core.findings import FindingLog
from harness.core.response import check_error_body
from harness.core.schemas import schema_set
from harness.core.verdict import judge_stream_body
from reference_gateway.config import GatewayConfig
from reference_gateway.errors import APIError
from reference_gateway.launch import start_gateway, start_mock_upstream
from reference_gateway.mock_upstream import FAULT_TOKENS
from reference_gateway.upstream import UpstreamStream

REQUEST_S = 1.0  # a whole non-streamed upstream call
FIRST_S = 0.5  # streamed: to the first chunk
IDLE_S = 0.5  # streamed: the longest silence after it
STREAM_S = 1.5  # streamed: all of it
LINE_CAP = 64 * 1024
BODY_CAP = 256 * 1024
DEADLINES = dict(request_timeout_s=REQUEST_S, stream_first_token_timeout_s=FIRST_S, stream_idle_timeout_s=IDLE_S,
                 stream_timeout_s=STREAM_S, upstream_max_line_bytes=LINE_CAP, upstream_max_body_bytes=BODY_CAP,
                 connect_timeout_s=REQUEST_S)
MARGIN_S = 2.0
CLIENT_TIMEOUT_S = 15.0
DISCONNECT_BOUND_S = 1.0  # the bound: the upstream sees the cancel within 1 s

# mode: (status and code, non-streamed; the deadline that ends it non-streamed / streamed; 0: at once)
FAULTS = {
    "stall-first": (504, "upstream_timeout", REQUEST_S, FIRST_S),
    "stall-mid": (504, "upstream_timeout", REQUEST_S, IDLE_S),
    "reset": (502, "upstream_error", 0, 0),
    "5xx": (502, "upstream_error", 0, 0),
    "bad-json": (502, "upstream_error", 0, 0),
    "truncated": (502, "upstream_error", 0, 0),
    "drip": (504, "upstream_timeout", REQUEST_S, STREAM_S),
    "oversized": (502, "upstream_error", 0, 0),
    # One rule streamed or not (upstream.py): an answer with no finish_reason is a fault.
    "no-finish": (502, "upstream_error", 0, 0),
    "stall-headers": (504, "upstream_timeout", REQUEST_S, FIRST_S),
}
# The default oversized answer (32 MiB) takes the mock a while to build: with these small
# deadlines the idle one could end it first. 300 kB passes both caps above just as well.
MODEL = {mode: f"mock-fault:{mode}" for mode in FAULTS} | {"oversized": "mock-fault:oversized:300000"}
BEFORE_THE_STREAM = {"5xx", "stall-headers"}  # fails before the upstream stream opens: an envelope, not a stream
MID_STREAM = {"stall-mid", "reset", "bad-json", "truncated"}  # FAULT_TOKENS tokens come first


@pytest.fixture(scope="module")
def mock():
    with start_mock_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return str(tmp_path_factory.mktemp("faults") / "gateway.sqlite3")


@pytest.fixture(scope="module")
def gateway(mock, db):
    with start_gateway(GatewayConfig(upstream_url=mock.base_url, db_path=db, **DEADLINES)) as server:
        yield server


@pytest.fixture(scope="module")
def patient_gateway(mock, db):
    """Default deadlines (60 s): only the client going away can end a stalled stream."""
    with start_gateway(GatewayConfig(upstream_url=mock.base_url, db_path=db)) as server:
        yield server


@pytest.fixture
def client(gateway):
    with httpx.Client(base_url=gateway.base_url, timeout=CLIENT_TIMEOUT_S) as c:
        yield c


def stored_statuses(db: str) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, status FROM stored_responses").fetchall())


def assert_nothing_pending(db: str) -> None:
    pending = {k: v for k, v in stored_statuses(db).items() if v in ("queued", "in_progress")}
    assert pending == {}, f"left pending in the store: {pending}"


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    log = FindingLog()
    check_error_body(body, log, schemas=schema_set("openai"))
    assert log.findings == [], [f.message for f in log.findings]
    error = body["error"]
    assert error["code"] == code and error["type"] == "server_error" and error["message"]
    return error


def assert_within(elapsed: float, deadline: float) -> None:
    assert elapsed < deadline + MARGIN_S, f"took {elapsed:.2f} s, the deadline is {deadline} s"
    if deadline:  # a timeout: the deadline is what ended it, so not before
        assert elapsed >= deadline * 0.95, f"ended after {elapsed:.2f} s, before its {deadline} s deadline"


def post_stream(client: httpx.Client, body: dict) -> tuple[httpx.Response, bytes, float]:
    started = time.monotonic()
    with client.stream("POST", "/responses", json={**body, "stream": True}) as response:
        raw = response.read()  # returns only once the gateway closed the stream
    return response, raw, time.monotonic() - started


def assert_failure_stream(raw: bytes, code: str) -> list[dict]:
    """A conformant failed stream, per the harness's own checker; returns its events."""
    judged = judge_stream_body(raw, "openai")
    assert judged.log.findings == [], [f"{f.check}: {f.message}" for f in judged.log.findings]
    events = judged.events
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert judged.terminal_type == "response.failed"
    error = events[-2]["error"]
    assert error["code"] == code and error["message"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    # One code in both places (translate.fail): the error event's and the failed response's.
    assert failed["error"] == {"code": code, "message": error["message"]}
    return events


@pytest.mark.parametrize("mode", list(FAULTS))
def test_fault_non_streamed(client, db, mode):
    status, code, deadline, _ = FAULTS[mode]
    before = stored_statuses(db)
    started = time.monotonic()
    r = client.post("/responses", json={"model": MODEL[mode], "input": "hi", "store": True})
    assert_within(time.monotonic() - started, deadline)
    assert_envelope(r, status, code)
    assert stored_statuses(db) == before  # not stored: the client got no id to look for


@pytest.mark.parametrize("mode", list(FAULTS))
def test_fault_streamed(client, mock, db, check_events, mode):
    status, code, _, deadline = FAULTS[mode]
    model = MODEL[mode]
    response, raw, elapsed = post_stream(client, {"model": model, "input": "hi", "store": True})
    assert_within(elapsed, deadline)
    if mode in BEFORE_THE_STREAM:
        assert_envelope(httpx.Response(response.status_code, content=raw), status, code)
        assert_nothing_pending(db)
        return
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = assert_failure_stream(raw, code)
    failed = check_events(events)  # and the suite's own independent grammar check
    if mode in MID_STREAM:  # what came before the fault is kept, in an item closed as incomplete
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert len(text.split()) == FAULT_TOKENS
        assert [item["status"] for item in failed["output"]] == ["incomplete"]
        assert failed["output"][0]["content"][0]["text"] == text
    stored = client.get(f"/responses/{failed['id']}").json()
    assert stored == failed  # stored as failed, as the stream ended it
    assert_nothing_pending(db)
    # The gateway dropped its upstream request: the mock's stream has ended (or never ran long).
    record = [s for s in mock.app.state.streams if s["model"] == model][-1]
    for _ in range(100):
        if record["ended"] is not None:
            break
        time.sleep(0.02)
    assert record["ended"] is not None, f"the upstream stream of {model} still runs"


@pytest.mark.parametrize("streamed", [False, True])
def test_refused_connection_is_502(db, streamed):
    with socket.socket() as probe:  # a loopback port that was free a moment ago: closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GatewayConfig(upstream_url=f"http://127.0.0.1:{port}/v1", db_path=db, **DEADLINES)
    with start_gateway(config) as gateway, httpx.Client(base_url=gateway.base_url, timeout=CLIENT_TIMEOUT_S) as c:
        started = time.monotonic()
        r = c.post("/responses", json={"model": "mock-1", "input": "hi", "stream": streamed, "store": True})
        assert_within(time.monotonic() - started, 0)
        error = assert_envelope(r, 502, "upstream_error")
    assert "cannot connect" in error["message"] and str(port) in error["message"]
    assert_nothing_pending(db)


@pytest.mark.parametrize("streamed", [False, True])
def test_oversized_beyond_the_default_caps(streamed):
    """The mock's default oversized answer (32 MiB) passes the gateway's default caps (1 MiB a
    line, 16 MiB a body): refused, not buffered."""
    with start_mock_upstream() as upstream, start_gateway(GatewayConfig(upstream_url=upstream.base_url)) as gateway:
        with httpx.Client(base_url=gateway.base_url, timeout=CLIENT_TIMEOUT_S) as c:
            body = {"model": "mock-fault:oversized", "input": "hi"}
            if streamed:
                response, raw, _ = post_stream(c, body)
                events = assert_failure_stream(raw, "upstream_error")
                assert "exceeds 1048576 bytes" in events[-2]["error"]["message"]
            else:
                error = assert_envelope(c.post("/responses", json=body), 502, "upstream_error")
                assert "exceeds 16777216 bytes" in error["message"]


def test_healthy_streams_still_complete(client, check_events):
    """The deadlines do not cut a stream that keeps its pace: 24 tokens, one every 40 ms (above
    the 0.5 s idle deadline in total, below it between chunks), end as completed."""
    response, raw, _ = post_stream(client, {"model": "mock-paced:100:40", "input": "hi"})
    judged = judge_stream_body(raw, "openai")
    assert judged.log.findings == [] and judged.terminal_type == "response.completed"
    assert check_events(judged.events)["status"] == "completed"


# -- a client that goes away ----------------------------------------------------------------

def read_until_text(raw) -> str:
    """Read the stream until the first output_text.delta; return the response id. ``raw`` is
    the caller's ``iter_raw()`` iterator: it must outlive this call, since closing it (as
    dropping it does) closes the connection."""
    response_id, buffer = None, b""
    for data in raw:
        buffer += data
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            payload = json.loads(frame.split(b"data: ", 1)[1])
            response_id = response_id or payload["response"]["id"]
            if payload["type"] == "response.output_text.delta":
                return response_id
    raise AssertionError("the stream ended before any text")


@pytest.mark.parametrize("model", ["mock-fault:stall-mid", "mock-paced:0:100"])
def test_disconnect_cancels_the_upstream_within_1s(patient_gateway, mock, db, model):
    """stall-mid: the gateway is waiting on a silent upstream when the client goes;
    mock-paced (a token every 100 ms, 2.4 s in all): it is relaying a live one."""
    started = time.monotonic()
    client = httpx.Client(base_url=patient_gateway.base_url, timeout=CLIENT_TIMEOUT_S)
    with client.stream("POST", "/responses", json={"model": model, "input": "bye", "stream": True}) as response:
        raw = response.iter_raw()
        response_id = read_until_text(raw)
        record = latest_record(mock, model, started)
        time.sleep(0.2)
        assert record["ended"] is None  # the upstream is still streaming (paced: 2.4 s; stalled: 30 s)
        closed = time.monotonic()
        raw.close()  # the connection is closed: the client went away mid-stream
    client.close()
    assert_cancelled_within_bound(record, closed)
    # Stored as failed (never in_progress): the client that comes back learns what happened.
    with httpx.Client(base_url=patient_gateway.base_url, timeout=CLIENT_TIMEOUT_S) as c:
        for _ in range(100):
            stored = c.get(f"/responses/{response_id}").json()
            if stored.get("status") != "in_progress":
                break
            time.sleep(0.02)
    assert stored["status"] == "failed"
    assert stored["error"] == {"code": "server_error",
                               "message": "The client disconnected before the response finished."}
    assert_nothing_pending(db)


def latest_record(mock, model: str, since: float) -> dict:
    """The mock's record of the newest upstream request for ``model`` made after ``since``,
    waited for (bounded)."""
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while time.monotonic() < deadline:
        records = [s for s in mock.app.state.streams if s["model"] == model and s["started"] >= since]
        if records:
            return records[-1]
        time.sleep(0.01)
    raise AssertionError(f"the upstream never saw a request for {model}")


def assert_cancelled_within_bound(record: dict, closed: float) -> None:
    deadline = closed + DISCONNECT_BOUND_S + MARGIN_S  # poll past the bound, then judge
    while record["ended"] is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert record["ended"] is not None, "the upstream never saw its request cancelled"
    assert record["outcome"] == "cancelled"
    assert record["ended"] - closed < DISCONNECT_BOUND_S, f"cancelled {record['ended'] - closed:.2f} s after"


# (model, stream): the phases before the gateway has sent anything.
BEFORE_ANY_ANSWER = {
    "streamed, upstream headers not yet come": ("mock-fault:stall-headers", True),
    "non-streamed, upstream headers not yet come": ("mock-fault:stall-headers", False),
    "non-streamed, upstream body half sent": ("mock-fault:stall-mid", False),
}


@pytest.mark.parametrize("phase", list(BEFORE_ANY_ANSWER))
def test_a_client_gone_before_any_answer_cancels_the_upstream_within_1s(patient_gateway, mock, db, phase):
    """The client sends its request on a raw socket and closes it while the gateway waits on a
    silent upstream (30 s; the gateway's deadline is 60 s): the gateway notices the ASGI
    disconnect and drops its upstream request within 1 s, whatever the phase."""
    model, streamed = BEFORE_ANY_ANSWER[phase]
    body = json.dumps({"model": model, "input": "bye", "stream": streamed, "store": True}).encode()
    head = (f"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection((patient_gateway.host, patient_gateway.port), timeout=CLIENT_TIMEOUT_S) as sock:
        sock.sendall(head + body)
        record = latest_record(mock, model, started)
        time.sleep(0.2)
        assert record["ended"] is None  # the upstream is still holding its answer back
        closed = time.monotonic()
    assert_cancelled_within_bound(record, closed)
    assert_nothing_pending(db)


# -- the stream reader, without a server ------------------------------------------------------

def _stream(pieces, *, delays=(), first_s=5.0, idle_s=5.0, total_s=5.0, cap=LINE_CAP):
    """An UpstreamStream over an in-memory body: ``pieces`` sent with ``delays[i]`` before each."""

    async def body():
        for i, piece in enumerate(pieces):
            if i < len(delays) and delays[i]:
                await asyncio.sleep(delays[i])
            yield piece

    async def open_it() -> tuple[httpx.AsyncClient, UpstreamStream]:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body()))
        client = httpx.AsyncClient(transport=transport)
        response = await client.send(client.build_request("GET", "http://upstream/"), stream=True)
        started = asyncio.get_running_loop().time()
        return client, UpstreamStream(response, started=started, first_token_s=first_s, idle_s=idle_s,
                                      total_s=total_s, max_line=cap)

    return open_it


def _collect(open_it, *, pause_after_first: float = 0.0):
    async def run():
        client, stream = await open_it()
        chunks = []
        try:
            async for chunk in stream.chunks():
                chunks.append(chunk)
                if len(chunks) == 1 and pause_after_first:
                    await asyncio.sleep(pause_after_first)  # the consumer is busy, not reading
            return chunks, None
        except APIError as exc:
            return chunks, exc
        finally:
            await stream.aclose()
            await client.aclose()

    return asyncio.run(run())


def test_reader_splits_lines_across_reads():
    frames = b'data: {"a": 1}\r\n\r\n: comment\nevent: x\ndata: {"a": 2}\n\ndata: {"a": 3}\n\ndata: [DONE]\n\n'
    for size in (1, 3, 7, len(frames)):
        pieces = [frames[i:i + size] for i in range(0, len(frames), size)]
        chunks, error = _collect(_stream(pieces))
        assert error is None and chunks == [{"a": 1}, {"a": 2}, {"a": 3}], size


@pytest.mark.parametrize("pieces", [
    [b"data: " + b"x" * LINE_CAP + b"\n\n"],  # one read
    [b"data: "] + [b"x" * 1000] * (LINE_CAP // 1000 + 1),  # many reads, no line end ever
])
def test_reader_refuses_a_line_over_the_cap(pieces):
    chunks, error = _collect(_stream(pieces))
    assert chunks == [] and error.status == 502 and f"exceeds {LINE_CAP} bytes" in error.message


def test_reader_accepts_a_line_at_the_cap():
    line = b'data: {"a": "' + b"x" * (LINE_CAP - 15) + b'"}'
    assert len(line) == LINE_CAP
    chunks, error = _collect(_stream([line[:100], line[100:] + b"\n\n"]))
    assert error is None and len(chunks) == 1


@pytest.mark.parametrize("delays, deadlines, says", [
    ([0.6], dict(first_s=0.2), "sent nothing within 0.2 s"),
    ([0, 0.6], dict(idle_s=0.2), "fell silent for more than 0.2 s"),
    ([0] + [0.05] * 20, dict(idle_s=0.2, total_s=0.4), "did not finish within 0.4 s"),
])
def test_reader_deadlines(delays, deadlines, says):
    pieces = [b'data: {"a": %d}\n\n' % i for i in range(len(delays))]
    started = time.monotonic()
    chunks, error = _collect(_stream(pieces, delays=delays, **deadlines))
    assert error is not None and error.status == 504 and error.code == "upstream_timeout"
    assert says in error.message
    assert time.monotonic() - started < max(deadlines.values()) + MARGIN_S
    assert len(chunks) < len(pieces)


def test_reader_deadline_passing_while_the_consumer_is_busy():
    """A deadline that passes while the consumer is busy between reads (in the gateway: sending
    to the client) must not cancel the consumer: it is raised at the next read instead."""
    pieces = [b'data: {"a": 1}\n\n', b'data: {"a": 2}\n\n']
    chunks, error = _collect(_stream(pieces, total_s=0.2), pause_after_first=0.5)
    assert chunks == [{"a": 1}]  # the pause ran to its end: the consumer was not cancelled
    assert error is not None and "did not finish within 0.2 s" in error.message


def test_store_false_failure_is_not_stored(client):
    _, raw, _ = post_stream(client, {"model": "mock-fault:bad-json", "input": "hi", "store": False})
    failed = assert_failure_stream(raw, "upstream_error")[-1]["response"]
    assert client.get(f"/responses/{failed['id']}").status_code == 404


def test_a_gateway_bug_mid_stream_still_ends_the_stream(client, db, monkeypatch):
    """An unexpected exception while relaying (a gateway bug): the client still gets ``error``
    then ``response.failed``, and the store holds it as failed, not in_progress."""
    from reference_gateway.emitter import Emitter

    def broken(emitter, delta):
        raise RuntimeError("bug")

    monkeypatch.setattr(Emitter, "chat_delta", broken)
    _, raw, _ = post_stream(client, {"model": "mock-1", "input": "hi", "store": True})
    failed = assert_failure_stream(raw, "server_error")[-1]["response"]
    assert failed["error"]["message"] == "The gateway had an internal error."
    assert client.get(f"/responses/{failed['id']}").json() == failed
    assert_nothing_pending(db)


# -- one verdict for one fault; the deadlines by default; a 429 passed on -----------------------

def test_no_finish_reason_is_one_verdict_streamed_or_not(client, check_events):
    """The whole answer but no finish_reason: a fault both ways, said the same way (upstream.py)."""
    body = {"model": "mock-fault:no-finish", "input": "hi"}
    error = assert_envelope(client.post("/responses", json=body), 502, "upstream_error")
    _, raw, _ = post_stream(client, body)
    events = assert_failure_stream(raw, "upstream_error")
    assert "finish_reason" in error["message"] and "finish_reason" in events[-2]["error"]["message"]
    failed = check_events(events)  # what came is kept, in an item closed as incomplete
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert len(text.split()) == 24 and failed["output"][0]["content"][0]["text"] == text
    assert failed["output"][0]["status"] == "incomplete"


def test_default_stream_deadline_is_the_non_streamed_one(mock):
    """Only --timeout set (1 s): a trickling upstream (one byte every 10 ms, never idle) gets the
    same 504 upstream_timeout at the same time, streamed or not; with the old defaults the
    stream ran on for the whole 1,800 s --stream-timeout."""
    config = GatewayConfig(upstream_url=mock.base_url, request_timeout_s=REQUEST_S)
    assert config.stream_deadlines == (REQUEST_S, REQUEST_S, REQUEST_S)
    body = {"model": "mock-fault:drip", "input": "hi"}
    with start_gateway(config) as gateway, httpx.Client(base_url=gateway.base_url, timeout=CLIENT_TIMEOUT_S) as c:
        started = time.monotonic()
        assert_envelope(c.post("/responses", json=body), 504, "upstream_timeout")
        assert_within(time.monotonic() - started, REQUEST_S)
        _, raw, elapsed = post_stream(c, body)
        assert_within(elapsed, REQUEST_S)
        events = assert_failure_stream(raw, "upstream_timeout")
        assert events[-2]["error"]["message"] == f"The upstream stream did not finish within {REQUEST_S:g} s."


def test_stream_deadline_defaults():
    """The defaults of the three stream deadlines (config.py), and the flags that leave them unset."""
    from reference_gateway.__main__ import parser
    from reference_gateway.config import DEFAULT_STREAM_IDLE_TIMEOUT_S

    url = "http://127.0.0.1:9/v1"
    assert GatewayConfig(upstream_url=url).stream_deadlines == (60.0, DEFAULT_STREAM_IDLE_TIMEOUT_S, 60.0)
    assert GatewayConfig(upstream_url=url, request_timeout_s=10.0).stream_deadlines == (10.0, 10.0, 10.0)
    assert GatewayConfig(upstream_url=url, stream_first_token_timeout_s=5.0, stream_idle_timeout_s=2.0,
                         stream_timeout_s=600.0).stream_deadlines == (5.0, 2.0, 600.0)
    args = parser().parse_args([])
    assert (args.stream_first_token_timeout, args.stream_idle_timeout, args.stream_timeout) == (None, None, None)


@pytest.mark.parametrize("streamed", [False, True])
def test_an_upstream_429_keeps_its_backoff_headers(client, mock, streamed):
    """A 429 comes before any stream opens: streamed or not, the client gets the upstream's 429
    envelope with Retry-After, retry-after-ms and the x-ratelimit-* headers."""
    from reference_gateway.mock_upstream import RATE_LIMIT_HEADERS

    r = client.post("/responses", json={"model": "mock-fault:429:3", "input": "hi", "stream": streamed})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limit_exceeded" and r.json()["error"]["message"]
    assert r.headers["retry-after"] == "3" and r.headers["retry-after-ms"] == "3000"
    assert {name: r.headers.get(name) for name in RATE_LIMIT_HEADERS} == RATE_LIMIT_HEADERS


def test_the_openai_sdk_backs_off_as_the_upstream_said(gateway, mock):
    """The openai SDK retries a 429 after the Retry-After it reads (2 s here); without the
    header it would wait its own ~0.5 s. One retry: two upstream calls, 2 s apart at least."""
    import openai

    retry_after_s = 2.0
    model = f"mock-fault:429:{retry_after_s:g}"
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=1, timeout=CLIENT_TIMEOUT_S)
    before = sum(1 for r in mock.app.state.requests if r.get("model") == model)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        sdk.responses.create(model=model, input="hi")
    assert time.monotonic() - started >= retry_after_s * 0.95
    assert sum(1 for r in mock.app.state.requests if r.get("model") == model) - before == 2
