"""`respcheck run --transport ws` end to end: WebSocket servers on 127.0.0.1, started here.

A tiny server replays the events the reference gateway really sends (one JSON text frame
each) and plants one defect per mode; a server with no WebSocket route refuses the upgrade
(``unsupported``); a server that stalls is cut at the deadline (``fail``, promptly); and the
bundled `websocket` scenarios pass against the embedded gateway.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from cli_servers import _models, read_summary, refusing_app, serve, write_scenarios

from harness.faces.cli import main
from harness.core.findings import MUST
from harness.core.transcript import read_transcript
from harness.core.verdict import judge_ws_turn
from harness.run.ws_client import WebSocketTransport

# How long the stalling handler waits at most before giving up on its own (the test's
# teardown releases it much sooner).
STALL_CAP_S = 30.0

WS_SUITE = {
    "websocket/turn": """\
title: one turn
feature: websocket
steps:
  - request:
      json: {model: "{{model}}", input: "Say hello.", max_output_tokens: 32, stream: true}
    expect: {status: 200}
""",
}


def events_of(sse: bytes) -> list[str]:
    """The JSON payloads of an SSE body, one per event (the gateway's real stream)."""
    return [line[len(b"data: "):].decode() for line in sse.splitlines()
            if line.startswith(b"data: ") and line != b"data: [DONE]"]


def ws_app(events: list[str], mode: str, release: threading.Event) -> Starlette:
    async def responses(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.receive_text()
                if mode == "stall":
                    deadline = time.monotonic() + STALL_CAP_S
                    while not release.is_set() and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    return
                frames: list[str | bytes] = list(events)
                if mode == "done":
                    frames.append("[DONE]")
                elif mode == "two_in_one":
                    frames[2:4] = [frames[2] + "\n" + frames[3]]
                elif mode == "binary":
                    frames[1] = frames[1].encode()
                elif mode == "huge":
                    frames[2] = json.dumps({"type": "response.in_progress", "pad": "x" * 5000})
                elif mode == "close":
                    for f in frames[:3]:
                        await ws.send_text(f)
                    await ws.close(code=1011)
                    return
                for f in frames:
                    if isinstance(f, bytes):
                        await ws.send_bytes(f)
                    else:
                        await ws.send_text(f)
        except WebSocketDisconnect:
            return

    return Starlette(routes=[_models("ws-model"), WebSocketRoute("/v1/responses", responses)])


def run_ws(server, tmp_path, *extra: str) -> tuple[int, dict, float]:
    suite = write_scenarios(tmp_path / "suite", WS_SUITE)
    t0 = time.monotonic()
    code = main(["run", "--target", server.base_url, "--model", "ws-model", "--scenarios",
                 str(suite), "--transport", "ws", "--report-dir", str(tmp_path / "report"),
                 *extra])
    return code, read_summary(tmp_path / "report"), time.monotonic() - t0


def rows(summary: dict) -> dict[str, dict]:
    return {r["check"]: r for r in summary["results"] if r["scenario"] == "websocket/turn"}


def test_a_right_turn_passes(recorded, tmp_path):
    release = threading.Event()
    with serve(ws_app(events_of(recorded.stream), "right", release), "ws server") as server:
        code, s, _ = run_ws(server, tmp_path)
    assert code == 0
    assert s["transport"] == "ws"
    got = rows(s)
    assert {r["status"] for r in got.values()} == {"pass"}, {c: r["message"] for c, r in got.items()}
    assert {"ws.handshake", "ws.frame.json", "ws.frame.no_done", "ws.socket.open",
            "stream.terminal.present", "response.accepted"} <= set(got)
    assert not [c for c in got if c.startswith("sse.") or c == "transport.closes_after_terminal"]
    [ex] = read_transcript(tmp_path / "report" / "transcripts" / "websocket__turn.jsonl")
    assert ex.transport == "ws" and ex.status == 101 and len(ex.frames) == len(events_of(recorded.stream))
    sent = json.loads(ex.request_body)
    assert sent["type"] == "response.create" and "stream" not in sent  # streaming is implicit


@pytest.mark.parametrize("mode,check", [("done", "ws.frame.no_done"),
                                        ("two_in_one", "ws.frame.json"),
                                        ("binary", "ws.frame.json")])
def test_a_broken_turn_fails_its_check(recorded, tmp_path, mode, check):
    release = threading.Event()
    with serve(ws_app(events_of(recorded.stream), mode, release), f"ws {mode}") as server:
        code, s, _ = run_ws(server, tmp_path)
    assert code == 1
    assert rows(s)[check]["status"] == "fail" and rows(s)[check]["level"] == MUST


def test_a_refused_upgrade_is_unsupported(tmp_path):
    """A server with no WebSocket route (Starlette answers the upgrade 403): unsupported."""
    with serve(refusing_app(), "no websocket") as server:
        code, s, _ = run_ws(server, tmp_path)
    assert code == 0
    got = rows(s)
    assert got["ws.handshake"]["status"] == "unsupported"
    assert not [r for r in got.values() if r["status"] == "fail"]
    assert s["scenarios"][0]["status"] == "unsupported"
    [ex] = read_transcript(tmp_path / "report" / "transcripts" / "websocket__turn.jsonl")
    assert ex.status == 403 and "refused the WebSocket upgrade" in ex.error


def test_a_stalling_server_fails_within_the_deadline(recorded, tmp_path):
    release = threading.Event()
    with serve(ws_app(events_of(recorded.stream), "stall", release), "ws stall") as server:
        try:
            code, s, elapsed = run_ws(server, tmp_path, "--deadline", "2")
        finally:
            release.set()
    assert code == 1
    assert elapsed < 15, f"a stalled server held the run for {elapsed:.1f} s"
    got = rows(s)
    assert got["ws.limits"]["status"] == "fail" and "2 s deadline" in got["ws.limits"]["message"]
    assert got["stream.terminal.present"]["status"] == "fail"


def test_the_websocket_scenarios_pass_on_the_embedded_gateway(tmp_path):
    report = tmp_path / "report"
    code = main(["run", "--transport", "ws", "--only", "websocket", "--report-dir", str(report)])
    s = read_summary(report)
    failed = [(r["scenario"], r["check"], r["message"]) for r in s["results"]
              if r["status"] == "fail"]
    assert code == 0 and not failed, failed
    ws = [o for o in s["scenarios"] if o["feature"] == "websocket"]
    assert len(ws) >= 5 and {o["status"] for o in ws} == {"pass"}
    assert {o["transport"] for o in ws} == {"ws"}


@pytest.mark.parametrize("mode,check,words", [
    ("huge", "ws.limits", "exceeds the frame cap"),
    ("close", "ws.socket.open", "code 1011"),
])
def test_the_transport_bounds_a_frame_and_sees_a_close(recorded, mode, check, words):
    """Straight through WebSocketTransport: a frame over max_frame_bytes ends the turn at
    once (websockets refuses it as it arrives, close 1009); a server closing mid-turn is
    recorded with its close code; either way the socket carries no further turn."""
    release = threading.Event()
    with serve(ws_app(events_of(recorded.stream), mode, release), f"ws {mode}") as server, \
            WebSocketTransport(server.base_url, max_frame_bytes=4096, deadline_s=5) as ws:
        ex = ws.turn("t1", json.dumps({"type": "response.create", "model": "m", "input": "x"}))
        again = ws.turn("t2", json.dumps({"type": "response.create", "model": "m", "input": "x"}))
    assert words in (ex.error or ""), ex.error
    assert ex.t_end < 5
    judged = judge_ws_turn(ex)
    assert judged.log.failed(check) and judged.log.failed("stream.terminal.present")
    assert "is closed" in again.error and not again.frames
    assert judge_ws_turn(again).log.failed("ws.socket.open")
