"""The load client under gevent (loadtests/http1.py): the response read inside gevent's hub on the
socket's readiness (``_read_when_ready``) and its deadlines on one timer (``_Watch``). The client
runs in a subprocess with gevent's monkey-patching, as locust runs it (never in this process: the
patching would reach pytest), against servers of this process that stall, drip, answer whole,
hang up, flood, or answer wrong."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENT = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": null}]}\n\n'
CHUNK = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)
DONE = b"data: [DONE]\n\n"

CLIENT = """
from gevent import monkey
monkey.patch_all()
import json, sys, time
from loadtests import http1
from loadtests.observe import ExchangeObserver

made, ready = [], []
init = http1._Watch.__init__
def counted(self, *args):
    made.append(1)
    init(self, *args)
http1._Watch.__init__ = counted
when_ready = http1._read_when_ready
def reading(*args):
    ready.append(1)
    return when_ready(*args)
http1._read_when_ready = reading
url, idle_s, deadline_s, times = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
if sys.argv[5:] == ["bug"]:  # a bug in the observer, met inside the hub's callback
    def broken(self, data, t):
        raise ValueError("a bug")
    ExchangeObserver.feed = broken
conn = http1.Connection(url)
for _ in range(times):
    started = time.monotonic()
    try:
        obs = conn.post("/chat/completions", b"{}", lambda t, w: ExchangeObserver(
            api="chat", stream=True, t_send=t, t_send_wall=w, check="off"), deadline_s=deadline_s,
            idle_s=idle_s)
    except Exception as exc:  # raised into the reader's greenlet
        print(json.dumps({"raised": type(exc).__name__, "watched": len(made), "ready": len(ready)}))
        continue
    s = obs.sample
    print(json.dumps({"error": s.error, "elapsed": time.monotonic() - started, "watched": len(made),
                      "ready": len(ready), "tokens": s.output_tokens, "status": s.status,
                      "reused": conn._reusable}))
"""


def _serve(answer, times: int = 1) -> tuple[str, threading.Event]:
    """A one-connection server whose ``answer(conn, stop)`` writes each of ``times`` responses."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run():
        conn, _ = listener.accept()
        with conn, listener:
            for _ in range(times):
                conn.recv(65536)  # the request (small: one read)
                try:
                    answer(conn, stop)
                except OSError:
                    return  # the client hung up

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1", stop


def _client(url: str, idle_s: float, deadline_s: float, times: int = 1, *extra: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", CLIENT, url, str(idle_s), str(deadline_s), str(times), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()]


def _stall(conn, stop):
    conn.sendall(HEAD + CHUNK)
    stop.wait(10)


def _drip(conn, stop):
    conn.sendall(HEAD)
    while not stop.wait(0.05):
        conn.sendall(CHUNK)


def _whole(conn, stop):
    conn.sendall(HEAD + CHUNK * 3 + b"%x\r\n%s\r\n" % (len(DONE), DONE) + b"0\r\n\r\n")


@pytest.mark.parametrize("answer, idle_s, deadline_s, error, within", [
    (_stall, 0.3, 10.0, "idle_timeout", (0.3, 2.0)),  # silent after its first event
    (_drip, 1.0, 0.6, "deadline", (0.6, 2.5)),  # never silent for 1 s, never done
    (_whole, 1.0, 10.0, None, (0.0, 2.0)),
])
def test_one_timer_keeps_both_deadlines(answer, idle_s, deadline_s, error, within):
    url, stop = _serve(answer)
    try:
        [result] = _client(url, idle_s, deadline_s)
    finally:
        stop.set()
    assert result["watched"] == 1  # the gevent socket took the one-timer path
    assert result["ready"] == 1  # and was read in the hub, on its readiness
    assert result["error"] == error
    low, high = within
    assert low <= result["elapsed"] < high, result  # from the request's start, in the client


def _end(conn):
    conn.sendall(b"%x\r\n%s\r\n" % (len(DONE), DONE) + b"0\r\n\r\n")


def _halves(conn, stop):
    """Each chunk in two writes, split inside its line: the reader is called back on each."""
    conn.sendall(HEAD)
    for _ in range(5):
        conn.sendall(CHUNK[:30])
        stop.wait(0.01)
        conn.sendall(CHUNK[30:])
    _end(conn)


def _hang_up(conn, stop):
    conn.sendall(HEAD + CHUNK * 2)
    conn.shutdown(socket.SHUT_WR)  # EOF inside a chunked body


def _until_close(conn, stop):
    """A body without framing ends with the connection: whole, and not reused."""
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                 + EVENT * 4 + DONE)
    conn.shutdown(socket.SHUT_WR)


def _big_head(conn, stop):
    """A head that never ends: cut at the cap, not at the silence after it."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"x-pad: a\r\n" * 2000)
    stop.wait(5)


def _garbage(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
    stop.wait(5)


def _flood(conn, stop):
    """One burst far past a read: 4,000 chunks in one write, taken over many callbacks."""
    conn.sendall(HEAD + CHUNK * 4000)
    _end(conn)


def _reset(conn, stop):
    conn.sendall(HEAD + CHUNK)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST


@pytest.mark.parametrize("answer, error, tokens", [
    (_halves, None, 5),
    (_flood, None, 4000),
    (_hang_up, "protocol: peer closed connection without sending complete message body", 2),
    (_until_close, None, 4),
    (_big_head, f"protocol: the response head exceeds {16 * 1024} bytes", 0),
    (_garbage, "protocol: Invalid character in chunk size", 0),
    (_reset, "transport: ConnectionResetError", 1),
])
def test_read_in_the_hub_ends_each_way(answer, error, tokens):
    url, stop = _serve(answer)
    try:
        [result] = _client(url, 5.0, 10.0)
    finally:
        stop.set()
    assert result["ready"] == 1
    assert result["error"] == error, result
    assert result["tokens"] == tokens
    assert result["elapsed"] < 4.0  # ended by what came, not by a deadline
    assert result["reused"] is False or error is None


def test_a_kept_alive_connection_is_read_again():
    url, stop = _serve(_whole, times=3)
    try:
        results = _client(url, 5.0, 10.0, times=3)
    finally:
        stop.set()
    assert [r["error"] for r in results] == [None, None, None]
    assert [r["tokens"] for r in results] == [3, 3, 3]
    assert all(r["reused"] for r in results)  # one connection, three exchanges
    assert results[-1]["ready"] == 3


def test_a_bug_in_the_observer_is_raised_in_the_reader():
    """Not swallowed by the hub (which would print it and leave the reader waiting for a deadline)."""
    url, stop = _serve(_whole)
    try:
        [result] = _client(url, 5.0, 10.0, 1, "bug")
    finally:
        stop.set()
    assert result == {"raised": "ValueError", "watched": 1, "ready": 1}
