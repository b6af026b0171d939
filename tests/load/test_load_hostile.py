"""``respcheck load`` against a server that misbehaves (tests/hostile/hostile_server.py).

The preflight is the conformance run's own (harness/run/client.py ``get_models``), so a /models
that refuses, stays silent or never ends is exit 2 and one line naming it, within the preflight's
deadline; and the load generator's own client (loadtests/http1.py) stops reading a body at the
harness's body cap instead of taking in a flood until its deadline.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))
from hostile_server import ENDLESS, HOLD_CAP_S, NO_HEADERS, WELL_BEHAVED, HostileServer  # noqa: E402

from harness.run.client import MAX_BODY_BYTES  # noqa: E402
from loadtests.cli import main  # noqa: E402
from loadtests.http1 import RECV_BYTES, Connection  # noqa: E402
from loadtests.observe import ExchangeObserver  # noqa: E402

DEADLINE_S = 1.0
# Imports, argument checks, the preflight's own deadline: "does not hang", not a benchmark.
CLI_OVERHEAD_S = 15.0


def run_load(target: str, tmp_path: Path, capsys) -> tuple[int, list[str], float]:
    t0 = time.monotonic()
    code = main(["--target", target, "--deadline", f"{DEADLINE_S:g}", "--duration", "1",
                 "--report-dir", str(tmp_path), "--quiet"])
    elapsed = time.monotonic() - t0
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.splitlines(), elapsed


@pytest.mark.parametrize("mode, words", [
    (NO_HEADERS, "accepted the connection but GET /models sent no response headers within 1 s"),
    (ENDLESS, "answered GET /models with HTTP 200 but an endless body"),
])
def test_a_hostile_models_route_is_exit_2_and_one_line(mode, words, tmp_path, capsys):
    with HostileServer({"models": mode}) as server:
        code, lines, elapsed = run_load(server.base_url, tmp_path, capsys)
        # The server's handler records the hang-up when it next touches the socket: wait for
        # it (bounded), the client being gone already (read at once, it raced on a busy CI).
        until = time.monotonic() + HOLD_CAP_S
        while f"models:{mode}" not in server.hangups and time.monotonic() < until:
            time.sleep(0.01)
        hangups = dict(server.hangups)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("respcheck load: "), lines
    assert words in lines[0] and server.base_url in lines[0], lines
    assert elapsed < DEADLINE_S + CLI_OVERHEAD_S, elapsed
    # the client hung up by itself, around the deadline (the server would have held on for
    # HOLD_CAP_S); the bound is generous: it proves "did not wait for the server", not speed
    assert hangups[f"models:{mode}"][0] < DEADLINE_S + 5.0, hangups


def test_connection_refused_is_exit_2_and_one_line(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, lines, _ = run_load(f"http://127.0.0.1:{port}/v1", tmp_path, capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert f"target http://127.0.0.1:{port}/v1 is unreachable: connection refused" in lines[0]


def test_the_load_client_stops_an_endless_body_at_the_cap():
    """POST /responses answered by deltas forever, flat out: the exchange ends with
    ``body_cap`` long before its (generous) deadline, having fed the observer no more than the
    cap; a well-behaved answer on the next request still works (a fresh connection)."""
    with HostileServer({"create": ENDLESS}) as server:
        conn = Connection(server.base_url)
        fed = 0

        class Counting(ExchangeObserver):
            def feed(self, data: bytes, t: float) -> None:
                nonlocal fed
                fed += len(data)
                super().feed(data, t)

        def observer(t: float, wall: float) -> ExchangeObserver:
            return Counting(api="responses", stream=True, t_send=t, t_send_wall=wall, check="off")

        body = b'{"model": "%s", "input": "hi", "stream": true}' % WELL_BEHAVED.encode()
        try:
            t0 = time.monotonic()
            obs = conn.post("/responses", body, observer, deadline_s=120.0, idle_s=30.0)
            elapsed = time.monotonic() - t0
        finally:
            conn.close()
    assert obs.sample.status == 200
    assert obs.sample.error == "body_cap", obs.sample.error
    assert MAX_BODY_BYTES - RECV_BYTES <= fed <= MAX_BODY_BYTES, fed
    assert elapsed < 60.0, elapsed  # cut by the cap, not by the 120 s deadline
