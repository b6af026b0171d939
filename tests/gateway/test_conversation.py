"""previous_response_id chains, GET input_items, DELETE, and durability across a restart."""

from __future__ import annotations

import json

import httpx
import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_gateway

ADD = {"type": "function", "name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}


def sent_messages(target) -> list[dict]:
    return target.upstream.app.state.requests[-1]["messages"]


def assert_error(r, status: int, param, code: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error


@pytest.mark.parametrize("streamed", [False, True])
def test_context_is_previous_input_then_output_then_new_input(client, target, stream, check_events, streamed):
    first = client.post("/responses", json={
        "model": "mock-1", "instructions": "FIRST INSTRUCTIONS", "tools": [ADD], "tool_choice": "required",
        "input": [{"role": "developer", "content": "dev"}, {"role": "user", "content": "add 1 2"}]}).json()
    (call,) = first["output"]
    second_body = {"model": "mock-1", "instructions": "SECOND", "previous_response_id": first["id"], "tools": [ADD],
                   "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "3"}]}
    if streamed:
        _, _, events = stream(client, second_body)
        second = check_events(events)
    else:
        second = client.post("/responses", json=second_body).json()
    assert second["status"] == "completed" and second["previous_response_id"] == first["id"]
    assert second["output"][0]["type"] == "message"
    expected = [
        {"role": "system", "content": "SECOND"},
        {"role": "developer", "content": "dev"},
        {"role": "user", "content": "add 1 2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["call_id"], "type": "function", "function": {"name": "add", "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["call_id"], "content": "3"},
    ]
    assert sent_messages(target) == expected
    # A third turn carries the whole chain, including the second turn's text answer.
    client.post("/responses", json={"model": "mock-1", "previous_response_id": second["id"], "input": "more"})
    answer = second["output"][0]["content"][0]["text"]
    assert sent_messages(target) == expected[1:] + [{"role": "assistant", "content": answer},
                                                    {"role": "user", "content": "more"}]


def test_mock_echo_shows_the_context_order(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "one", "instructions": "old"}).json()
    second = client.post("/responses", json={"model": "mock-echo", "input": "two",
                                             "previous_response_id": first["id"]}).json()
    echoed = json.loads(second["output"][0]["content"][0]["text"])
    assert echoed == [{"role": "user", "content": "one"},
                      {"role": "assistant", "content": first["output"][0]["content"][0]["text"]},
                      {"role": "user", "content": "two"}]


def test_chain_survives_deleting_an_earlier_response(client, target):
    a = client.post("/responses", json={"model": "mock-1", "input": "a"}).json()
    b = client.post("/responses", json={"model": "mock-1", "input": "b", "previous_response_id": a["id"]}).json()
    assert client.delete(f"/responses/{a['id']}").status_code == 200
    r = client.post("/responses", json={"model": "mock-1", "input": "c", "previous_response_id": b["id"]})
    assert r.status_code == 200
    assert [m["content"] for m in sent_messages(target) if m["role"] == "user"] == ["a", "b", "c"]


@pytest.mark.parametrize("how", ["unknown", "deleted", "not_stored"])
@pytest.mark.parametrize("streamed", [False, True])
def test_previous_response_not_found(client, target, how, streamed):
    previous = "resp_unknown"
    if how != "unknown":
        previous = client.post("/responses", json={"model": "mock-1", "input": "x", "store": how != "not_stored"}).json()["id"]
        if how == "deleted":
            client.delete(f"/responses/{previous}")
    sent = len(target.upstream.app.state.requests)
    r = client.post("/responses", json={"model": "mock-1", "input": "y", "previous_response_id": previous,
                                        "stream": streamed})
    assert_error(r, 400, "previous_response_id", "previous_response_not_found")
    assert len(target.upstream.app.state.requests) == sent


def test_input_items_list_this_requests_input(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "earlier"}).json()
    items = [{"role": "user", "content": "u1"},
             {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a1"}]},
             {"type": "function_call", "call_id": "call_x", "name": "add", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "call_x", "output": "0"},
             {"type": "reasoning", "id": "rs_given", "summary": []},
             {"role": "user", "content": [{"type": "input_text", "text": "u2"}]}]
    created = client.post("/responses", json={"model": "mock-1", "input": items,
                                              "previous_response_id": first["id"]}).json()
    listed = client.get(f"/responses/{created['id']}/input_items").json()
    data = listed["data"]
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [i["type"] for i in data] == ["message", "reasoning", "function_call_output", "function_call",
                                         "message", "message"]  # desc: newest first
    assert (listed["first_id"], listed["last_id"]) == (data[0]["id"], data[-1]["id"])
    assert data[-1]["content"] == [{"type": "input_text", "text": "u1"}] and data[-1]["id"].startswith("msg_")
    assert data[1]["id"] == "rs_given" and data[3]["id"].startswith("fc_") and data[2]["id"].startswith("fco_")
    assert data[4]["content"][0]["type"] == "output_text"
    asc = client.get(f"/responses/{created['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert asc == list(reversed(data))
    page = client.get(f"/responses/{created['id']}/input_items", params={"order": "asc", "limit": 2}).json()
    assert page["data"] == asc[:2] and page["has_more"] is True
    page = client.get(f"/responses/{created['id']}/input_items",
                      params={"order": "asc", "limit": 2, "after": page["last_id"]}).json()
    assert page["data"] == asc[2:4] and page["has_more"] is True
    from openai.types.responses import ResponseItem
    from pydantic import TypeAdapter
    for item in data:
        TypeAdapter(ResponseItem).validate_python(item)


@pytest.mark.parametrize("params, param", [({"order": "up"}, "order"), ({"limit": 0}, "limit"),
                                           ({"limit": 101}, "limit"), ({"limit": "x"}, "limit"),
                                           ({"after": "msg_nope"}, "after")])
def test_input_items_bad_query(client, params, param):
    created = client.post("/responses", json={"model": "mock-1", "input": "x"}).json()
    r = client.get(f"/responses/{created['id']}/input_items", params=params)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_delete_removes_response_and_items(client):
    created = client.post("/responses", json={"model": "mock-1", "input": "x"}).json()
    assert client.delete(f"/responses/{created['id']}").json() == {"id": created["id"], "object": "response",
                                                                    "deleted": True}
    for path in (f"/responses/{created['id']}", f"/responses/{created['id']}/input_items"):
        assert_error(client.get(path), 404, None, "not_found")


def test_restart_keeps_responses_and_chains(target, tmp_path):
    """Stop the gateway, start a new one on the same file: same objects, chains still continue."""
    db = str(tmp_path / "gateway.sqlite3")
    config = GatewayConfig(upstream_url=target.upstream.base_url, db_path=db)
    with start_gateway(config) as gateway, httpx.Client(base_url=gateway.base_url, timeout=5) as c:
        created = c.post("/responses", json={"model": "mock-1", "input": "persist", "tools": [ADD],
                                             "tool_choice": "required"}).json()
        items = c.get(f"/responses/{created['id']}/input_items").json()
    with start_gateway(config) as gateway, httpx.Client(base_url=gateway.base_url, timeout=5) as c:
        assert c.get(f"/responses/{created['id']}").json() == created
        assert c.get(f"/responses/{created['id']}/input_items").json() == items
        call = created["output"][0]
        r = c.post("/responses", json={"model": "mock-1", "previous_response_id": created["id"], "input": [
            {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}]})
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    assert [m["role"] for m in sent_messages(target)] == ["user", "assistant", "tool"]
