"""The load client's deadlines under gevent (loadtests/http1.py ``_Watch``): the client runs in a
subprocess with gevent's monkey-patching, as locust runs it (never in this process: the patching
would reach pytest), against servers of this process that stall, drip, or answer whole."""

from __future__ import annotations

import json
import socket
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

made = []
init = http1._Watch.__init__
def counted(self, *args):
    made.append(1)
    init(self, *args)
http1._Watch.__init__ = counted
url, idle_s, deadline_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
started = time.monotonic()
obs = http1.Connection(url).post("/chat/completions", b"{}", lambda t, w: ExchangeObserver(
    api="chat", stream=True, t_send=t, t_send_wall=w, check="off"), deadline_s=deadline_s, idle_s=idle_s)
print(json.dumps({"error": obs.sample.error, "elapsed": time.monotonic() - started, "watched": len(made)}))
"""


def _serve(answer) -> tuple[str, threading.Event]:
    """A one-connection server whose ``answer(conn, stop)`` writes the response."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run():
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)  # the request (small: one read)
            try:
                answer(conn, stop)
            except OSError:
                pass  # the client hung up

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1", stop


def _client(url: str, idle_s: float, deadline_s: float) -> dict:
    done = subprocess.run([sys.executable, "-c", CLIENT, url, str(idle_s), str(deadline_s)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


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
        result = _client(url, idle_s, deadline_s)
    finally:
        stop.set()
    assert result["watched"] == 1  # the gevent socket took the one-timer path
    assert result["error"] == error
    low, high = within
    assert low <= result["elapsed"] < high, result  # from the request's start, in the client
