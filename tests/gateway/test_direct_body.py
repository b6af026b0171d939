"""The inline relay (issue 20): a chat stream's tokens written straight to the client's
connection (direct_body.py, gateway.py ``ChatAnswer._events``, upstream.py ``reads(inline)``).

Judged against the ordinary path: the same gateway app served by uvicorn's own protocol, which
offers no ``direct_body`` extension, so that every event goes through ASGI ``send``.
"""

from __future__ import annotations

import socket
import sys
import time
from types import SimpleNamespace

import httpx
import orjson
import pytest

from harness.core.verdict import judge_stream_body
from reference_gateway import direct_body
from reference_gateway.app import create_app
from reference_gateway.config import GatewayConfig
from reference_gateway.direct_body import DirectBody
from reference_gateway.emitter import Emitter
from reference_gateway.launch import RunningServer, start_gateway

# 0 ms to the first token, then one every 2 ms: each token comes in a read of its own.
PACED = "mock-paced:0:2"


@pytest.fixture(scope="module")
def gateways(target):
    """(direct, ordinary): the same app in front of the same mock, on the gateway's protocol
    and on uvicorn's own."""
    config = GatewayConfig(upstream_url=target.upstream.base_url)
    direct = start_gateway(config)
    ordinary = RunningServer(create_app(config), name="gateway on uvicorn's protocol")
    yield direct, ordinary
    direct.close()
    ordinary.close()


@pytest.fixture
def writes(monkeypatch):
    """How many body parts the gateways wrote directly, the text deltas among them, and how
    often ``ready`` said no."""
    seen = {"writes": 0, "deltas": 0, "not_ready": 0}
    write, ready = DirectBody.write, DirectBody.ready

    def counted_write(self, data):
        seen["writes"] += 1
        seen["deltas"] += data.count(b"event: response.output_text.delta\n")
        write(self, data)

    def counted_ready(self):
        answer = ready(self)
        seen["not_ready"] += not answer
        return answer

    monkeypatch.setattr(DirectBody, "write", counted_write)
    monkeypatch.setattr(DirectBody, "ready", counted_ready)
    return seen


def _stream(server, body: dict) -> bytes:
    with httpx.Client(base_url=server.base_url, timeout=10) as client, \
            client.stream("POST", "/responses", json={"stream": True, "store": False, **body}) as response:
        assert response.status_code == 200
        return response.read()


def _shape(events: list[dict]) -> list[tuple]:
    """What must not depend on the path: each event's type, number, place and text."""
    return [(e["type"], e["sequence_number"], e.get("output_index"), e.get("content_index"),
             e.get("delta"), e.get("text")) for e in events]


def test_tokens_go_straight_to_the_connection_and_the_stream_is_the_ordinary_one(gateways, writes):
    direct, ordinary = gateways
    body = {"model": PACED, "input": "tell me a story", "max_output_tokens": 40}
    raw = _stream(direct, body)
    written = dict(writes)
    plain = _stream(ordinary, body)
    # A token every 2 ms: most go inline (all but the first and the last, on an idle machine);
    # a read that comes while the task still sends the one before goes the ordinary way.
    assert written["deltas"] >= 10
    assert writes == written  # uvicorn's own protocol offers no direct body
    judged, judged_plain = judge_stream_body(raw, "openai"), judge_stream_body(plain, "openai")
    assert judged.log.findings == [] and judged_plain.log.findings == []
    assert judged.terminal_type == "response.incomplete"  # max_output_tokens
    assert _shape(judged.events) == _shape(judged_plain.events)
    assert len([e for e in judged.events if e["type"] == "response.output_text.delta"]) == 40


def test_a_stored_stream_inline_is_stored_whole(gateways, writes):
    direct, _ = gateways
    raw = _stream(direct, {"model": PACED, "input": "tell me a story", "max_output_tokens": 40, "store": True})
    assert writes["deltas"] >= 10
    judged = judge_stream_body(raw, "openai")
    assert judged.log.findings == []
    sent = judged.events[-1]["response"]
    with httpx.Client(base_url=direct.base_url, timeout=10) as client:
        stored = client.get(f"/responses/{sent['id']}").json()
        replayed = client.get(f"/responses/{sent['id']}", params={"stream": "true"}).content
    assert stored["output"] == sent["output"] and stored["status"] == "incomplete"
    assert _shape(judge_stream_body(replayed, "openai").events) == _shape(judged.events)


def test_a_gateway_bug_while_inline_ends_the_stream_failed_after_what_was_sent(gateways, writes, monkeypatch):
    direct, _ = gateways
    text, calls = Emitter.text, {"n": 0, "bug": None}

    def text_with_a_bug(self, delta):
        """A bug in the 10th token or the first one after it that is relayed inline (made
        inside the upstream connection's callback, ``_sunk``)."""
        calls["n"] += 1
        if calls["n"] >= 10 and calls["bug"] is None and _inside("_sunk"):
            calls["bug"] = calls["n"]
            raise RuntimeError("a gateway bug")
        return text(self, delta)

    monkeypatch.setattr(Emitter, "text", text_with_a_bug)
    raw = _stream(direct, {"model": PACED, "input": "tell me a story", "max_output_tokens": 40})
    assert calls["bug"] is not None  # the bug came while tokens went inline
    judged = judge_stream_body(raw, "openai")
    assert judged.log.findings == [], [f"{f.check}: {f.message}" for f in judged.log.findings]
    assert [e["type"] for e in judged.events[-2:]] == ["error", "response.failed"]
    assert judged.events[-2]["error"]["message"] == "The gateway had an internal error."
    deltas = [e for e in judged.events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == calls["bug"] - 1  # every token before the bug, none after


def _inside(function: str) -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def small_buffers(target):
    """A gateway whose connections have a 4 KiB send buffer (set on the listening socket, which
    the accepted ones copy; the kernel would otherwise grow it to 4 MiB before uvicorn's own
    buffer fills)."""
    server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url))
    server._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    yield server
    server.close()


def test_a_client_that_stops_reading_gets_the_rest_the_ordinary_way_in_order(small_buffers, writes):
    """A full transport (uvicorn pauses writing past its high-water mark) is not ``ready``:
    the tokens then go through ``send``, which waits for the drain; nothing is lost."""
    direct = small_buffers
    body = orjson.dumps({"model": "mock-paced:0:1", "input": "tell me a story", "max_output_tokens": 1500,
                         "stream": True, "store": False})
    head = (b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect((direct.host, direct.port))
        sock.sendall(head + body)
        time.sleep(1.0)  # not reading: the gateway's buffer fills
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    assert writes["not_ready"] > 0, writes
    head_end = received.index(b"\r\n\r\n")
    chunks = []  # undo the chunked framing
    rest = memoryview(bytes(received[head_end + 4:]))
    while True:
        size_end = bytes(rest[:16]).index(b"\r\n")
        size = int(bytes(rest[:size_end]), 16)
        if size == 0:
            break
        chunks.append(bytes(rest[size_end + 2:size_end + 2 + size]))
        rest = rest[size_end + 4 + size:]
    judged = judge_stream_body(b"".join(chunks), "openai")
    assert judged.log.findings == [] and judged.terminal_type == "response.incomplete"
    assert len([e for e in judged.events if e["type"] == "response.output_text.delta"]) == 1500


def _cycle(**state):
    written = []
    fields = {"response_started": True, "response_complete": False, "disconnected": False,
              "chunked_encoding": True, "flow": SimpleNamespace(write_paused=False),
              "transport": SimpleNamespace(write=written.append)}
    fields.update(state)
    return SimpleNamespace(**fields), written


@pytest.mark.parametrize("state", [
    {"response_started": False}, {"response_complete": True}, {"disconnected": True},
    {"flow": SimpleNamespace(write_paused=True)}, {"chunked_encoding": False}, {"chunked_encoding": None},
])
def test_not_ready_when_a_write_would_not_reach_the_client_as_send_puts_it(state):
    cycle, _ = _cycle(**state)
    assert DirectBody(cycle).ready() is False


def test_a_write_is_one_chunk_framed_as_uvicorn_frames_it():
    cycle, written = _cycle()
    body = DirectBody(cycle)
    assert body.ready() is True
    body.write(b"event: x\ndata: {}\n\n")
    body.write(b"")  # an empty chunk would end the body: nothing is written
    assert written == [b"13\r\nevent: x\ndata: {}\n\n\r\n"]


def test_the_extension_is_offered_in_the_scope():
    scope = {"type": "http"}
    cycle, _ = _cycle()
    direct_body.install(scope, cycle)
    assert isinstance(scope["extensions"][direct_body.EXTENSION], DirectBody)
