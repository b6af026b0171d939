"""A stored stream exists from its ``response.created`` on (response_keeper.py): a GET during
the stream answers it ``in_progress`` with its output so far, for its tenant only; a chain cannot
continue from it; ``store: false`` stores nothing. And the parts: ``LiveOutput`` folded over
whole real streams gives their final output; the writer commits in batches and fails only the
group that failed (store_writer.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import httpx
import pytest
from test_websocket import open_socket, receive, send

from reference_gateway.response_keeper import LiveOutput
from reference_gateway.store_sqlite import SQLiteStore
from reference_gateway.store_writer import PROGRESS_INTERVAL_S, StoreWriter

KEY_A, KEY_B = "sk-live-test-alice-0123456789abcdef", "sk-live-test-bob-0123456789abcdef"
# The mock streams this many text tokens, then is silent for STALL_S (mock_upstream.FAULT_TOKENS).
STALLED_TOKENS = 3
STALL_S = 20
LIVE_DEADLINE_S = 5.0  # generous: a progress interval is 0.25 s
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def poll(client: httpx.Client, response_id: str, key: str, done) -> dict:
    """GET until ``done(body)`` or the deadline; the last body."""
    deadline = time.monotonic() + LIVE_DEADLINE_S
    while True:
        r = client.get(f"/responses/{response_id}", headers=auth(key))
        assert r.status_code == 200, r.text
        if done(r.json()) or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.05)


def read_until_stall(lines) -> tuple[str, str]:
    """(response id, text so far) of a stream, read up to its STALLED_TOKENS-th text delta.
    The caller keeps ``lines`` referenced: a line iterator that is collected closes the stream."""
    response_id, deltas = None, []
    for line in lines:
        if not line.startswith("data: "):
            continue
        event = json.loads(line[len("data: "):])
        if event["type"] == "response.created":
            response_id = event["response"]["id"]
        elif event["type"] == "response.output_text.delta":
            deltas.append(event["delta"])
            if len(deltas) == STALLED_TOKENS:
                return response_id, "".join(deltas)
        assert event["type"] not in TERMINAL, event
    raise AssertionError("the stream ended before its stall")


def message_text(body: dict) -> str:
    return "".join(part.get("text", "") for item in body["output"] if item["type"] == "message"
                   for part in item.get("content", []))


def test_a_stored_stream_is_live_in_progress_for_its_tenant_only(make_gateway):
    c = make_gateway(api_keys=(KEY_A, KEY_B))
    body = {"model": f"mock-fault:stall-mid:{STALL_S}", "input": "live", "stream": True}
    with c.stream("POST", "/responses", json=body, headers=auth(KEY_A)) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        response_id, text = read_until_stall(lines)
        live = poll(c, response_id, KEY_A, lambda b: message_text(b) == text)
        assert live["status"] == "in_progress", live
        assert message_text(live) == text and text, (live, text)
        assert live["output"][0]["status"] == "in_progress"
        # Another tenant: exactly as absent as an unknown id.
        assert c.get(f"/responses/{response_id}", headers=auth(KEY_B)).status_code == 404
        assert c.get(f"/responses/{response_id}/input_items", headers=auth(KEY_A)).status_code == 200
        # A chain never continues from an unfinished response.
        cont = c.post("/responses", headers=auth(KEY_A),
                      json={"model": "mock-1", "input": "next", "previous_response_id": response_id})
        assert cont.status_code == 400 and cont.json()["error"]["code"] == "previous_response_in_progress", cont.text
    # The client left mid-stream: stored failed, never left in progress.
    final = poll(c, response_id, KEY_A, lambda b: b["status"] != "in_progress")
    assert final["status"] == "failed" and "client disconnected" in final["error"]["message"], final
    assert message_text(final) == text


def test_store_false_stores_nothing_even_while_it_runs(client):
    body = {"model": f"mock-fault:stall-mid:{STALL_S}", "input": "not kept", "stream": True, "store": False}
    with client.stream("POST", "/responses", json=body) as r:
        lines = r.iter_lines()
        response_id, _ = read_until_stall(lines)
        time.sleep(3 * PROGRESS_INTERVAL_S)  # several progress batches: none may store it
        assert client.get(f"/responses/{response_id}").status_code == 404
    assert client.get(f"/responses/{response_id}").status_code == 404


def test_a_stored_websocket_turn_is_live_over_http(target, client):
    with open_socket(target.base_url) as ws:
        send(ws, model=f"mock-fault:stall-mid:{STALL_S}", input="live socket", store=True)
        response_id, deltas = None, []
        while len(deltas) < STALLED_TOKENS:
            event = receive(ws)
            assert event["type"] not in TERMINAL, event
            if event["type"] == "response.created":
                response_id = event["response"]["id"]
            elif event["type"] == "response.output_text.delta":
                deltas.append(event["delta"])
        live = poll(client, response_id, "none", lambda b: message_text(b) == "".join(deltas))
        assert live["status"] == "in_progress" and message_text(live) == "".join(deltas), live


@pytest.mark.parametrize("body", [
    {"model": "mock-1", "input": "plain text"},
    {"model": "mock-reasoning", "input": "think"},
    {"model": "mock-1", "input": "call", "tool_choice": "required", "tools": [
        {"type": "function", "name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}},
        {"type": "function", "name": "b", "parameters": {"type": "object", "properties": {"y": {"type": "integer"}}}}]},
], ids=["text", "reasoning", "two-calls"])
def test_live_output_folded_over_a_whole_stream_is_its_final_output(client, stream, body):
    _, _, events = stream(client, body)
    assert events[-1]["type"] == "response.completed"
    live = LiveOutput(events[0]["response"])
    partial_seen = False
    for event in events[:-1]:
        live.fold(event)
        snapshot = live.snapshot()
        partial_seen |= any(item.get("status") == "in_progress" for item in snapshot["output"])
    assert live.snapshot()["output"] == events[-1]["response"]["output"]
    assert partial_seen  # the snapshots in between did show unfinished items
    assert live.snapshot()["status"] == "in_progress"  # the terminal event was not folded


def row(n: int) -> dict:
    return {"id": f"resp_{n}", "status": "in_progress", "store": True, "output": []}


async def test_the_writer_batches_and_fails_only_the_group_that_failed(tmp_path):
    store = SQLiteStore(str(tmp_path / "w.sqlite3"))
    writer = StoreWriter(store)
    try:
        before = writer.batches
        results = await asyncio.gather(*(writer.write([store.put_statement(row(n), owner="o", input_items=[],
                                                                           context=[])]) for n in range(50)))
        assert results == [[1]] * 50
        # 50 groups queued at once: committed in far fewer transactions (group commit).
        assert writer.batches - before < 25, writer.batches - before
        groups = [[store.put_statement(row(n), owner="o", input_items=[], context=[])] for n in (50, 7, 51)]
        results = await asyncio.gather(*(writer.write(g) for g in groups), return_exceptions=True)
        assert results[0] == [1] and results[2] == [1], results
        assert isinstance(results[1], sqlite3.IntegrityError), results  # resp_7 exists: only its group fails
        assert all(store.get(f"resp_{n}", "o") for n in range(52))
    finally:
        await writer.aclose()
        store.close()


def test_a_stream_deleted_while_it_runs_stays_deleted(client):
    """The final write of an opened row is a conditional update: it never brings a DELETE back."""
    body = {"model": f"mock-fault:stall-mid:{STALL_S}", "input": "deleted live", "stream": True}
    with client.stream("POST", "/responses", json=body) as r:
        lines = r.iter_lines()
        response_id, _ = read_until_stall(lines)
        assert client.delete(f"/responses/{response_id}").json()["deleted"] is True
        time.sleep(3 * PROGRESS_INTERVAL_S)  # progress batches meanwhile: none may bring it back
        assert client.get(f"/responses/{response_id}").status_code == 404
    # The client left: the gateway's final write (failed, client disconnected) finds no row.
    time.sleep(3 * PROGRESS_INTERVAL_S)
    assert client.get(f"/responses/{response_id}").status_code == 404
