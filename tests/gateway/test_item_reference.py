"""``item_reference`` input items (reference_gateway/item_reference.py): a reference to a stored
output message, function call or input item reaches the upstream exactly as the item itself
would; an unknown id, another tenant's, or one of a ``store: false`` response is OpenAI's 404."""

from __future__ import annotations

import pytest

ADD = {"type": "function", "name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}
KEY_A = "sk-test-alice-0123456789abcdef0123456789abcdef"
KEY_B = "sk-test-bob-fedcba9876543210fedcba9876543210"


def sent_messages(target) -> list[dict]:
    return target.upstream.app.state.requests[-1]["messages"]


def ref(item_id: str) -> dict:
    return {"type": "item_reference", "id": item_id}


def assert_not_found(r, item_id: str) -> None:
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "input" and error["code"] is None, error
    assert f"Item with id '{item_id}' not found" in error["message"] and "`store`" in error["message"], error


def test_reference_to_an_output_message_is_that_message(client, target):
    first = client.post("/responses", json={"model": "mock-1", "input": "hello there"}).json()
    (message,) = first["output"]
    answer = message["content"][0]["text"]
    r = client.post("/responses", json={"model": "mock-1", "input": [
        {"role": "user", "content": "hello there"}, ref(message["id"]), {"role": "user", "content": "and now?"}]})
    assert r.status_code == 200, r.text
    referenced = sent_messages(target)
    # The same request with the message sent in full gives the upstream the same messages.
    client.post("/responses", json={"model": "mock-1", "input": [
        {"role": "user", "content": "hello there"}, message, {"role": "user", "content": "and now?"}]})
    assert referenced == sent_messages(target) == [
        {"role": "user", "content": "hello there"}, {"role": "assistant", "content": answer},
        {"role": "user", "content": "and now?"}]
    # The new response's input items list the message itself, not the reference.
    items = client.get(f"/responses/{r.json()['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert [i["type"] for i in items] == ["message", "message", "message"]
    assert items[1] == message


def test_reference_to_a_function_call_then_its_output(client, target):
    first = client.post("/responses", json={"model": "mock-1", "input": "add 1 2", "tools": [ADD],
                                             "tool_choice": "required"}).json()
    (call,) = first["output"]
    assert call["type"] == "function_call"
    r = client.post("/responses", json={"model": "mock-1", "tools": [ADD], "input": [
        {"role": "user", "content": "add 1 2"}, ref(call["id"]),
        {"type": "function_call_output", "call_id": call["call_id"], "output": "3"}]})
    assert r.status_code == 200, r.text
    assert sent_messages(target) == [
        {"role": "user", "content": "add 1 2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["call_id"], "type": "function", "function": {"name": "add", "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["call_id"], "content": "3"}]


def test_reference_to_a_stored_input_item(client, target):
    first = client.post("/responses", json={"model": "mock-1", "input": [
        {"type": "message", "id": "msg_client_given_1", "role": "developer", "content": "Speak like a pirate."},
        {"role": "user", "content": "hi"}]}).json()
    items = client.get(f"/responses/{first['id']}/input_items", params={"order": "asc"}).json()["data"]
    generated = items[1]["id"]  # the gateway's id for the user message: referable too
    r = client.post("/responses", json={"model": "mock-1", "input": [ref("msg_client_given_1"), ref(generated)]})
    assert r.status_code == 200, r.text
    assert sent_messages(target) == [{"role": "developer", "content": "Speak like a pirate."},
                                     {"role": "user", "content": "hi"}]


def test_reference_with_previous_response_id(client, target):
    """A chain and a reference together: the referenced item comes where it stands in the input."""
    first = client.post("/responses", json={"model": "mock-1", "input": "one"}).json()
    answer = first["output"][0]
    r = client.post("/responses", json={"model": "mock-1", "previous_response_id": first["id"],
                                        "input": [ref(answer["id"]), {"role": "user", "content": "two"}]})
    assert r.status_code == 200, r.text
    text = answer["content"][0]["text"]
    assert sent_messages(target) == [{"role": "user", "content": "one"}, {"role": "assistant", "content": text},
                                     {"role": "assistant", "content": text}, {"role": "user", "content": "two"}]


def test_unknown_id_is_404_and_nothing_is_sent_upstream(client, target):
    before = len(target.upstream.app.state.requests)
    r = client.post("/responses", json={"model": "mock-1", "input": [ref("msg_nothing_has_this_id")]})
    assert_not_found(r, "msg_nothing_has_this_id")
    assert len(target.upstream.app.state.requests) == before


def test_a_response_id_is_not_an_item_id(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "hello"}).json()
    assert_not_found(client.post("/responses", json={"model": "mock-1", "input": [ref(first["id"])]}), first["id"])


def test_store_false_items_cannot_be_referenced(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "hello", "store": False}).json()
    item_id = first["output"][0]["id"]
    assert_not_found(client.post("/responses", json={"model": "mock-1", "input": [ref(item_id)]}), item_id)


def test_deleted_response_items_cannot_be_referenced(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "hello"}).json()
    item_id = first["output"][0]["id"]
    assert client.delete(f"/responses/{first['id']}").status_code == 200
    assert_not_found(client.post("/responses", json={"model": "mock-1", "input": [ref(item_id)]}), item_id)


def test_another_tenants_item_is_as_unknown(make_gateway):
    keyed = make_gateway(api_keys=(KEY_A, KEY_B))
    first = keyed.post("/responses", json={"model": "mock-1", "input": "hello"},
                       headers={"authorization": f"Bearer {KEY_A}"}).json()
    item_id = first["output"][0]["id"]
    body = {"model": "mock-1", "input": [ref(item_id), {"role": "user", "content": "more"}]}
    assert_not_found(keyed.post("/responses", json=body, headers={"authorization": f"Bearer {KEY_B}"}), item_id)
    assert keyed.post("/responses", json=body, headers={"authorization": f"Bearer {KEY_A}"}).status_code == 200


@pytest.mark.parametrize("item, param, code", [
    ({"type": "item_reference"}, "input[0].id", "missing_required_parameter"),
    ({"type": "item_reference", "id": ""}, "input[0].id", "invalid_type"),
    ({"type": "item_reference", "id": 7}, "input[0].id", "invalid_type"),
])
def test_malformed_reference_is_400(client, item, param, code):
    r = client.post("/responses", json={"model": "mock-1", "input": [item]})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, code)


def test_references_in_input_tokens_and_compact(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "hello there"}).json()
    message = first["output"][0]
    counted = client.post("/responses/input_tokens", json={"model": "mock-1", "input": [ref(message["id"])]})
    full = client.post("/responses/input_tokens", json={"model": "mock-1", "input": [message]})
    assert counted.status_code == 200 and counted.json() == full.json()
    assert_not_found(client.post("/responses/input_tokens", json={"model": "mock-1", "input": [ref("msg_none")]}),
                     "msg_none")
    assert client.post("/responses/compact", json={"model": "mock-1", "input": [ref(message["id"])]}).status_code == 200
    assert_not_found(client.post("/responses/compact", json={"model": "mock-1", "input": [ref("msg_none")]}),
                     "msg_none")
