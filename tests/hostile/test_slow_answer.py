"""The transport's waits (harness/run/client.py): a request that does not ask to stream is held
to the deadline alone, since its server sends nothing until its whole answer is made; a
streamed one also to the read timeout (silence, its head included)."""

from __future__ import annotations

import json
import socketserver
import threading
import time

import pytest

from harness.run.client import Transport

HEAD_AFTER_S = 1.0  # the server's time to its answer


class _SlowHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        length = 0
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.rfile.read(length)
        time.sleep(HEAD_AFTER_S)
        body = b'{"ok": true}'
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                         b"connection: close\r\n\r\n%s" % (len(body), body))


@pytest.fixture(scope="module")
def slow_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _post(base_url: str, body: dict, *, deadline_s: float, read_timeout_s: float):
    with Transport(base_url, deadline_s=deadline_s, read_timeout_s=read_timeout_s) as transport:
        started = time.monotonic()
        ex = transport.request("s", "POST", "/responses", body=json.dumps(body).encode(),
                               headers={"content-type": "application/json"})
        return ex, time.monotonic() - started


def test_a_non_streamed_answer_slower_than_the_read_timeout_is_waited_for_until_the_deadline(slow_server):
    ex, elapsed = _post(slow_server, {"model": "m", "input": "x"}, deadline_s=5.0, read_timeout_s=0.3)
    assert ex.error is None and ex.status == 200, ex.error
    assert elapsed >= HEAD_AFTER_S


def test_past_the_deadline_it_is_still_cut(slow_server):
    ex, elapsed = _post(slow_server, {"model": "m", "input": "x", "stream": False}, deadline_s=0.4,
                        read_timeout_s=0.3)
    assert ex.status is None and ex.error == "no response headers within 0.4 s (the deadline)"
    assert elapsed < HEAD_AFTER_S


def test_a_streamed_request_keeps_the_read_timeout_for_its_head(slow_server):
    ex, elapsed = _post(slow_server, {"model": "m", "input": "x", "stream": True}, deadline_s=5.0,
                        read_timeout_s=0.3)
    assert ex.status is None and ex.error == "no response headers within 0.3 s (timed out: the read timeout)"
    assert elapsed < HEAD_AFTER_S


def test_a_replay_stream_asked_in_the_query_keeps_the_read_timeout(slow_server):
    with Transport(slow_server, deadline_s=5.0, read_timeout_s=0.3) as transport:
        replay = transport.request("s", "GET", "/responses/resp_1?stream=true&starting_after=2")
        stored = transport.request("s", "GET", "/responses/resp_1")
    assert replay.error == "no response headers within 0.3 s (timed out: the read timeout)"
    assert stored.error is None and stored.status == 200, stored.error
