"""WebSocket mode (reference_gateway/websocket.py), against real gateways on loopback.

Each test drives ``ws://.../v1/responses`` with the ``websockets`` sync client; every receive
is bounded by ``RECV_S`` and every turn by ``MAX_EVENTS`` frames. The rule numbers are those of
the module docstring of websocket.py.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from reference_gateway import websocket
from reference_gateway.launch import start_embedded

RECV_S = 5.0
MAX_EVENTS = 500
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
MARGIN_S = 2.0  # this noisy 2-core VM
DISCONNECT_BOUND_S = 1.0  # as over HTTP (test_faults.py): the upstream sees the cancel within 1 s
KEY = "ws-test-key-0123456789abcdef0123456789"


def ws_url(base_url) -> str:
    return str(base_url).rstrip("/").replace("http://", "ws://", 1) + "/responses"


def open_socket(base_url, **options):
    return connect(ws_url(base_url), open_timeout=RECV_S, close_timeout=2, **options)


def receive(ws) -> dict:
    frame = ws.recv(timeout=RECV_S)
    assert isinstance(frame, str), f"a binary frame: {frame!r}"
    event = json.loads(frame)  # one JSON value per frame, or this raises
    assert isinstance(event, dict), frame
    return event


def read_turn(ws) -> list[dict]:
    """The events of one turn: up to a terminal event or a pre-creation error (rule 5)."""
    events = []
    for _ in range(MAX_EVENTS):
        event = receive(ws)
        events.append(event)
        if event["type"] in TERMINAL or (event["type"] == "error" and "sequence_number" not in event):
            return events
    raise AssertionError(f"no end of turn within {MAX_EVENTS} frames")


def send(ws, **body) -> None:
    ws.send(json.dumps({"type": "response.create", **body}))


def turn(ws, **body) -> list[dict]:
    send(ws, **body)
    return read_turn(ws)


def assert_error(events: list[dict], status: int, code: str, param: str | None = None) -> dict:
    """One rule-4 error event: no response created, no sequence_number."""
    assert len(events) == 1, [e["type"] for e in events]
    event = events[0]
    assert event["type"] == "error" and "sequence_number" not in event, event
    assert event["status"] == status, event
    error = event["error"]
    assert error["code"] == code and error["param"] == param, event
    assert isinstance(error["message"], str) and error["message"] and error["type"], event
    return error


def text_of(events: list[dict]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def completes(ws, **body) -> dict:
    events = turn(ws, **body)
    assert events[-1]["type"] == "response.completed", [e["type"] for e in events]
    return events[-1]["response"]


BODY = {"model": "mock-1", "input": "hello over a socket", "max_output_tokens": 16}


def test_one_turn_is_the_http_stream(target, client, stream, check_events):
    """Rule 5: the same events, in the same order, as HTTP streaming; one object per frame,
    sequence_number from 0, no [DONE]."""
    _, _, http_events = stream(client, BODY)
    with open_socket(target.base_url) as ws:
        ws.send(json.dumps({"type": "response.create", **BODY}))
        frames = []
        for _ in range(MAX_EVENTS):
            frame = ws.recv(timeout=RECV_S)
            frames.append(frame)
            if json.loads(frame)["type"] in TERMINAL:
                break
        with pytest.raises(TimeoutError):  # nothing after the terminal event: no [DONE]
            ws.recv(timeout=0.3)
    assert all(isinstance(f, str) and "[DONE]" not in f for f in frames)
    events = [json.loads(f) for f in frames]
    assert all(isinstance(e, dict) and "type" in e for e in events)
    assert [e["type"] for e in events] == [e["type"] for e in http_events]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = check_events(events)
    assert final["status"] == "incomplete"  # max_output_tokens 16 cuts the mock's answer
    assert text_of(events) == text_of(http_events) and text_of(events)


def test_sequential_turns_on_one_socket(target, check_events):
    with open_socket(target.base_url) as ws:
        ids = []
        for n in range(3):
            events = turn(ws, model="mock-1", input=f"turn {n}", max_output_tokens=16)
            assert events[0]["sequence_number"] == 0  # from 0 again, for each response
            ids.append(check_events(events)["id"])
    assert len(set(ids)) == 3


def test_store_false_continues_on_its_socket_only(target, client):
    """Rules 7, 8: a store:false response continues on its own socket (its context reaches the
    upstream: mock-echo answers with the messages it got), not on a fresh one, not over HTTP."""
    with open_socket(target.base_url) as ws:
        first = completes(ws, model="mock-1", input="remember the first words", store=False)
        first_text = first["output"][0]["content"][0]["text"]
        echoed = completes(ws, model="mock-echo", input="and now the second", store=False,
                           previous_response_id=first["id"])
    messages = json.loads(echoed["output"][0]["content"][0]["text"])
    assert messages == [{"role": "user", "content": "remember the first words"},
                        {"role": "assistant", "content": first_text},
                        {"role": "user", "content": "and now the second"}]
    with open_socket(target.base_url) as fresh:
        events = turn(fresh, model="mock-1", input="again", previous_response_id=first["id"])
        assert_error(events, 400, "previous_response_not_found", "previous_response_id")
        assert completes(fresh, model="mock-1", input="still open")["status"] == "completed"  # rule 4
    r = client.post("/responses", json={"model": "mock-1", "input": "again", "previous_response_id": first["id"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "previous_response_not_found"
    assert client.get(f"/responses/{first['id']}").status_code == 404  # never stored


def test_failed_continuation_evicts_the_cache(target):
    """Rule 9: an error event that named X forgets X (a store:false X is then not found); an
    error that named nothing leaves the cache as it was."""
    with open_socket(target.base_url) as ws:
        first = completes(ws, model="mock-1", input="one", store=False)
        assert_error(turn(ws, model="mock-1", input="x", bogus=1), 400, "unknown_parameter", "bogus")
        kept = completes(ws, model="mock-1", input="two", store=False, previous_response_id=first["id"])
        # The cache now holds ``kept``; a continuation that fails before creation evicts it.
        assert_error(turn(ws, model="mock-1", input="x", bogus=1, previous_response_id=kept["id"]),
                     400, "unknown_parameter", "bogus")
        assert_error(turn(ws, model="mock-1", input="three", previous_response_id=kept["id"]),
                     400, "previous_response_not_found", "previous_response_id")


def test_failed_response_evicts_what_it_continued(target):
    with open_socket(target.base_url) as ws:
        first = completes(ws, model="mock-1", input="one", store=False)
        events = turn(ws, model="mock-fault:bad-json", input="two", store=False, previous_response_id=first["id"])
        assert events[-1]["type"] == "response.failed"
        assert_error(turn(ws, model="mock-1", input="three", previous_response_id=first["id"]),
                     400, "previous_response_not_found", "previous_response_id")


@pytest.mark.parametrize("field, value", [("stream", True), ("stream", False), ("stream", None),
                                          ("stream_options", {"include_usage": True}), ("background", True)])
def test_stream_and_background_are_refused(target, field, value):
    """Rule 3, and the socket stays open."""
    with open_socket(target.base_url) as ws:
        assert_error(turn(ws, **BODY, **{field: value}), 400, "unsupported_parameter", field)
        assert completes(ws, model="mock-1", input="after")["status"] == "completed"


@pytest.mark.parametrize("frame, code, param", [
    ("{not json", "invalid_json", None),
    ("[1, 2]", "invalid_json", None),
    ("NaN", "invalid_json", None),
    (b'{"type": "response.create"}', "invalid_json", None),  # a binary frame
    ('{"type": "response.cancel"}', "unknown_event_type", "type"),
    ('{"model": "mock-1", "input": "no type"}', "unknown_event_type", "type"),
])
def test_bad_frames_get_an_error_and_the_socket_works(target, frame, code, param):
    """Rule 2."""
    with open_socket(target.base_url) as ws:
        ws.send(frame)
        assert_error(read_turn(ws), 400, code, param)
        assert completes(ws, model="mock-1", input="after")["status"] == "completed"


def test_http_errors_become_error_events(target):
    """Rule 4: validation, an unknown model's route, an upstream that refuses before streaming."""
    with open_socket(target.base_url) as ws:
        assert_error(turn(ws, model="mock-1"), 400, "missing_required_parameter", "input")
        assert_error(turn(ws, model="mock-1", input="x", temperature="hot"), 400, "invalid_type", "temperature")
        error = assert_error(turn(ws, model="mock-fault:5xx", input="x"), 502, "upstream_error")
        assert error["type"] == "server_error"
        assert completes(ws, model="mock-1", input="after")["status"] == "completed"


def test_queued_frames_are_answered_in_order(target):
    """Rule 6: three frames sent back-to-back, before reading anything."""
    with open_socket(target.base_url) as ws:
        send(ws, model="mock-echo", input="first in line")
        ws.send("{broken")
        send(ws, model="mock-echo", input="third in line")
        one, two, three = read_turn(ws), read_turn(ws), read_turn(ws)
    assert one[-1]["type"] == "response.completed" and "first in line" in text_of(one)
    assert_error(two, 400, "invalid_json")
    assert three[-1]["type"] == "response.completed" and "third in line" in text_of(three)
    assert one[-1]["response"]["id"] != three[-1]["response"]["id"]


@pytest.fixture(scope="module")
def keyed():
    with start_embedded(api_keys=(KEY,)) as embedded:
        yield embedded


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}])
def test_bad_key_gets_401_then_close_1008(keyed, headers):
    """Rule 1."""
    with open_socket(keyed.base_url, additional_headers=headers) as ws:
        assert_error(read_turn(ws), 401, "invalid_api_key")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=RECV_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_right_key_is_the_http_tenant(keyed):
    """Rule 1 and 10: the socket's responses belong to its key, as over HTTP."""
    with open_socket(keyed.base_url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        final = completes(ws, model="mock-1", input="keyed", store=True)
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed.base_url, timeout=RECV_S, headers=headers) as c:
        assert c.get(f"/responses/{final['id']}").json() == final


def test_stored_response_is_retrievable_over_http(target, client):
    """Rule 10."""
    with open_socket(target.base_url) as ws:
        final = completes(ws, model="mock-1", input="keep me", store=True)
        cont = completes(ws, model="mock-1", input="and me", previous_response_id=final["id"])
    assert client.get(f"/responses/{final['id']}").json() == final
    assert client.get(f"/responses/{cont['id']}").json() == cont
    items = client.get(f"/responses/{cont['id']}/input_items").json()["data"]
    assert [i["content"][0]["text"] for i in items] == ["and me"]


def test_connection_limit(make_gateway):
    """Rule 12: past the lifetime, the next turn gets the limit error and the socket closes 1000."""
    with make_gateway(ws_max_connection_s=0.6) as c, open_socket(c.base_url) as ws:
        assert completes(ws, model="mock-1", input="in time")["status"] == "completed"
        time.sleep(0.8)
        assert_error(turn(ws, model="mock-1", input="too late"), 400, "websocket_connection_limit_reached")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=RECV_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_idle_socket_is_closed_after_its_grace(make_gateway, monkeypatch):
    """Rule 12's bound on an idle socket: closed (1000) ``IDLE_GRACE_S`` after its lifetime."""
    monkeypatch.setattr(websocket, "IDLE_GRACE_S", 0.3)  # the gateway runs in this process
    with make_gateway(ws_max_connection_s=0.3) as c, open_socket(c.base_url) as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=RECV_S)
        assert 0.5 <= time.monotonic() - started < 0.6 + MARGIN_S
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_mid_stream_upstream_failure(target, client, check_events):
    """Rule 5: after response.created, error (with its sequence_number) then response.failed."""
    with open_socket(target.base_url) as ws:
        events = turn(ws, model="mock-fault:bad-json", input="hi", store=True)
        assert completes(ws, model="mock-1", input="after")["status"] == "completed"
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["sequence_number"] == len(events) - 2 and "status" not in events[-2]
    assert events[-2]["error"]["code"] == "upstream_error"
    failed = check_events(events)
    assert failed["status"] == "failed"
    assert client.get(f"/responses/{failed['id']}").json() == failed


def test_disconnect_cancels_the_upstream(target, client):
    """Rule 11: the client goes mid-response; the upstream request is dropped within 1 s and the
    response stored failed, as over HTTP."""
    model = "mock-paced:0:100"  # a token every 100 ms, 2.4 s in all
    streams = target.upstream.app.state.streams
    started = time.monotonic()
    with open_socket(target.base_url) as ws:
        send(ws, model=model, input="bye", store=True)
        response_id = None
        for _ in range(MAX_EVENTS):
            event = receive(ws)
            response_id = response_id or event["response"]["id"]
            if event["type"] == "response.output_text.delta":
                break
        record = [s for s in streams if s["model"] == model and s["started"] >= started][-1]
        time.sleep(0.2)
        assert record["ended"] is None  # the upstream is still streaming
        closed = time.monotonic()
        ws.close()  # the client goes away mid-response
    deadline = closed + DISCONNECT_BOUND_S + MARGIN_S
    while record["ended"] is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert record["ended"] is not None, "the upstream never saw its request cancelled"
    assert record["outcome"] == "cancelled"
    assert record["ended"] - closed < DISCONNECT_BOUND_S, f"cancelled {record['ended'] - closed:.2f} s after"
    for _ in range(100):
        stored = client.get(f"/responses/{response_id}").json()
        if stored.get("status") != "in_progress":
            break
        time.sleep(0.02)
    assert stored["status"] == "failed"
    assert stored["error"]["message"] == "The client disconnected before the response finished."


def test_no_done_frame_even_with_the_sentinel(make_gateway):
    """Rule 5: ``--done-sentinel`` frames HTTP's SSE only; a WebSocket turn ends at its terminal event."""
    with make_gateway(done_sentinel=True) as c, open_socket(c.base_url) as ws:
        assert completes(ws, model="mock-1", input="hi")["status"] == "completed"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


def test_turns_are_counted_in_metrics(make_gateway):
    def count(c, status: str) -> float:
        for line in c.get("/metrics", headers={"accept": "text/plain"}).text.splitlines():
            if line.startswith("reference_gateway_requests_total{") and 'method="WEBSOCKET"' in line \
                    and f'status="{status}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    with make_gateway() as c:
        metrics = httpx.Client(base_url=str(c.base_url).rstrip("/").removesuffix("/v1"), timeout=RECV_S)
        with metrics, open_socket(c.base_url) as ws:
            completes(ws, model="mock-1", input="counted")
            assert_error(turn(ws, model="mock-1"), 400, "missing_required_parameter", "input")
            assert (count(metrics, "200"), count(metrics, "400")) == (1.0, 1.0)
