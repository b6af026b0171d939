"""judge_ws_turn: a right WebSocket turn passes every check it is judged on, and each way of
breaking a turn is caught by the check that claims it (ws.frame.json, ws.frame.no_done,
ws.error.shape, stream.terminal.present + ws.limits, ws.socket.open, ws.handshake).

Turns are built as harness/run/ws_client.py records them (``Exchange(transport="ws")`` with
``frames``), from the same correct event stream the stream checker's tests use.
"""

from __future__ import annotations

import json

import pytest

from harness.core.transcript import Exchange, read_transcript, write_transcript
from harness.core.verdict import judge_ws_turn, ws_exchange_view
from stream_builder import message_stream

PROFILES = ("openai", "openresponses")
PRE_CREATION_ERROR = {"type": "error", "status": 400,
                      "error": {"type": "invalid_request_error", "code": "invalid_value",
                                "message": "Invalid temperature.", "param": "temperature"}}


def turn(frames: list, *, status: int | None = 101, error: str | None = None,
         cut: bool = False, body: bytes = b"") -> Exchange:
    ex = Exchange("step0", "WS", "ws://127.0.0.1:1/v1/responses", {}, b'{"type":"response.create"}',
                  status=status, transport="ws", socket="main", error=error, cut=cut)
    ex.frames = [(0.001 * i, f if isinstance(f, (str, bytes)) else json.dumps(f))
                 for i, f in enumerate(frames)]
    if body:
        ex.chunks = [(0.0, body)]
    return ex


def failed(judged) -> set[str]:
    return {f.check for f in judged.log.findings}


@pytest.mark.parametrize("profile", PROFILES)
def test_a_right_turn_passes(profile):
    judged = judge_ws_turn(turn(message_stream()), profile)
    assert failed(judged) == set(), judged.log.findings
    assert judged.kind == "stream" and judged.status == 200
    assert judged.terminal_type == "response.completed"
    assert judged.response and judged.response["status"] == "completed"
    assert {"ws.frame.json", "ws.frame.no_done", "ws.handshake", "ws.socket.open",
            "stream.terminal.present", "stream.sequence.contiguous"} <= judged.log.applied


@pytest.mark.parametrize("profile", PROFILES)
def test_sse_only_checks_make_no_row(profile):
    """The openresponses profile requires `data: [DONE]` over SSE; over WebSocket there is no
    such thing, so neither its absence nor any other SSE-only check is judged."""
    judged = judge_ws_turn(turn(message_stream()), profile)
    assert not {c for c in judged.log.applied
                if c.startswith("sse.") or c == "transport.closes_after_terminal"}


@pytest.mark.parametrize("profile", PROFILES)
def test_a_right_error_turn_is_an_error_with_the_events_status(profile):
    judged = judge_ws_turn(turn([PRE_CREATION_ERROR]), profile)
    assert failed(judged) == set(), judged.log.findings
    assert judged.kind == "error" and judged.status == 400
    assert judged.error == {"error": PRE_CREATION_ERROR["error"]}
    assert "ws.error.shape" in judged.log.applied
    assert "stream.terminal.present" not in judged.log.applied  # no response was created
    seen = ws_exchange_view(turn([PRE_CREATION_ERROR]), judged)
    assert seen.status == 400  # what `status: 400` / error_code / error_param read


def test_binary_frame_fails_frame_json():
    events = [json.dumps(e) for e in message_stream()]
    events[3] = events[3].encode()
    judged = judge_ws_turn(turn(events))
    assert "ws.frame.json" in failed(judged)
    f = next(f for f in judged.log.findings if f.check == "ws.frame.json")
    assert f.evidence["frame"] == 3 and "binary" in f.message


def test_two_events_in_one_frame_fail_frame_json():
    events = [json.dumps(e) for e in message_stream()]
    events[2:4] = [events[2] + "\n" + events[3]]
    judged = judge_ws_turn(turn(events))
    f = next(f for f in judged.log.findings if f.check == "ws.frame.json")
    assert "more than one JSON value" in f.message and f.evidence["frame"] == 2


@pytest.mark.parametrize("frame", ["not json", "[1, 2]", '{"type": 7}', '"response.created"'])
def test_a_frame_that_is_not_one_event_fails_frame_json(frame):
    events = [json.dumps(e) for e in message_stream()]
    events.insert(2, frame)
    assert "ws.frame.json" in failed(judge_ws_turn(turn(events)))


@pytest.mark.parametrize("profile", PROFILES)
def test_done_frame_fails_no_done(profile):
    judged = judge_ws_turn(turn([*message_stream(), "[DONE]"]), profile)
    assert failed(judged) == {"ws.frame.no_done"}, judged.log.findings


@pytest.mark.parametrize("broken", [
    {"type": "error", "error": PRE_CREATION_ERROR["error"]},                       # no status
    {**PRE_CREATION_ERROR, "status": "400"},                                       # not an int
    {"type": "error", "status": 400, "message": "flat, not nested", "code": "x"},  # no error
    {**PRE_CREATION_ERROR, "error": {**PRE_CREATION_ERROR["error"], "message": None}},
])
def test_malformed_error_event_fails_error_shape(broken):
    judged = judge_ws_turn(turn([broken]), "openresponses")
    assert "ws.error.shape" in failed(judged), judged.log.findings
    assert judged.kind == "error"


def test_error_code_null_fails_error_shape_under_openresponses():
    """Open Responses requires error.code as a string (the SDK's ResponseWsError allows null)."""
    event = {**PRE_CREATION_ERROR, "error": {**PRE_CREATION_ERROR["error"], "code": None}}
    assert "ws.error.shape" in failed(judge_ws_turn(turn([event]), "openresponses"))


def test_events_after_a_pre_creation_error_fail():
    judged = judge_ws_turn(turn([PRE_CREATION_ERROR, *message_stream()[:2]]))
    assert "stream.terminal.single" in failed(judged)


def test_missing_terminal_at_the_deadline_fails_terminal_and_limits():
    events = message_stream()[:-1]
    judged = judge_ws_turn(turn(events, error="no terminal event within the 2 s deadline "
                                f"({len(events)} frames)", cut=True))
    assert {"stream.terminal.present", "ws.limits"} <= failed(judged)
    assert judged.response is None


def test_a_silent_server_fails_terminal_and_limits():
    judged = judge_ws_turn(turn([], error="no terminal event within the 2 s deadline "
                                "(0 frames)", cut=True))
    assert {"stream.terminal.present", "ws.limits"} <= failed(judged)


def test_a_server_closing_mid_turn_fails_socket_open():
    events = message_stream()[:4]
    ex = turn(events, error="the server closed the socket (code 1011) before the turn's "
              "terminal event (4 frames)")
    ex.ws_close = {"code": 1011, "reason": ""}
    assert {"ws.socket.open", "stream.terminal.present"} <= failed(judge_ws_turn(ex))


def test_a_turn_on_a_closed_socket_fails_socket_open_only():
    ex = turn([], error="the socket 'main' is closed: the server closed the socket (code "
              "1000) after the previous turn; the turn was not sent")
    judged = judge_ws_turn(ex)
    assert failed(judged) == {"ws.socket.open"} and judged.kind == "transport"


def test_a_refused_upgrade_is_refused_not_a_failure():
    body = b'{"detail": "Not Found"}'
    judged = judge_ws_turn(turn([], status=404, error="the server refused the WebSocket "
                                "upgrade: HTTP 404", body=body))
    assert judged.kind == "refused" and judged.status == 404 and failed(judged) == set()
    assert judged.error == {"detail": "Not Found"}


def test_a_5xx_upgrade_fails_handshake():
    judged = judge_ws_turn(turn([], status=500, error="the server refused the WebSocket "
                                "upgrade: HTTP 500"))
    assert failed(judged) == {"ws.handshake"}


def test_no_socket_fails_reachable():
    judged = judge_ws_turn(turn([], status=None, error="cannot open the WebSocket: "
                                "ConnectionRefusedError"))
    assert failed(judged) == {"transport.reachable"} and judged.kind == "transport"


def test_a_ws_turn_survives_the_transcript(tmp_path):
    """Text and binary frames stay apart through the JSONL transcript; re-judging gives the
    same verdict."""
    events = [json.dumps(e) for e in message_stream()]
    events.insert(1, b"\x00\x01")
    ex = turn(events)
    ex.ws_close = {"code": 1000, "reason": "bye"}
    path = tmp_path / "t.jsonl"
    write_transcript(path, [ex])
    [back] = read_transcript(path)
    assert back.transport == "ws" and back.socket == "main" and back.ws_close == ex.ws_close
    assert back.frames == [(round(t, 6), m) for t, m in ex.frames]
    assert failed(judge_ws_turn(back)) == failed(judge_ws_turn(ex)) == {"ws.frame.json"}
