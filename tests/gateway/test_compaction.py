"""``POST /v1/responses/compact`` (reference_gateway/compaction.py) and its item as input."""

from __future__ import annotations

import json

import pytest
from openai.types.responses.compacted_response import CompactedResponse


def user(text: str) -> dict:
    return {"role": "user", "content": text}


CONVERSATION = [user("a"), {"role": "assistant", "content": "b"}, user("c")]


def test_compact_lists_users_then_one_compaction_item(client):
    r = client.post("/responses/compact", json={"model": "mock-1", "input": CONVERSATION})
    assert r.status_code == 200, r.text
    body = r.json()
    # The SDK's type, but for the user messages: it types output as ResponseOutputItem, whose only
    # message is the assistant's, while its own docstring says the output lists user messages.
    CompactedResponse.model_validate({**body, "output": body["output"][-1:]})
    assert body["output"][0]["content"] == [{"type": "input_text", "text": "a"}]
    assert body["object"] == "response.compaction"
    assert [(i["type"], i.get("role")) for i in body["output"]] == [("message", "user"), ("message", "user"),
                                                                     ("compaction", None)]
    assert body["output"][-1]["id"].startswith("cmp_") and body["usage"]["total_tokens"] == 0


def test_the_compacted_output_continues_the_same_conversation(client):
    compacted = client.post("/responses/compact", json={"model": "mock-1", "input": CONVERSATION}).json()
    r = client.post("/responses", json={"model": "mock-echo", "input": compacted["output"] + [user("d")]})
    assert r.status_code == 200, r.text
    seen = json.loads(r.json()["output"][0]["content"][0]["text"])
    assert seen == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"}, {"role": "user", "content": "d"}]


def test_compact_a_stored_chain(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "one"}).json()
    compacted = client.post("/responses/compact", json={"model": "mock-1", "previous_response_id": first["id"],
                                                        "input": "two"}).json()
    r = client.post("/responses", json={"model": "mock-echo", "input": compacted["output"]})
    seen = json.loads(r.json()["output"][0]["content"][0]["text"])
    assert [m["content"] for m in seen] == ["one", first["output"][0]["content"][0]["text"], "two"]


@pytest.mark.parametrize("body, param, code", [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "mock-1", "input": "x", "frobnicate": 1}, "frobnicate", "unknown_parameter"),
    ({"model": "mock-1"}, "input", "missing_required_parameter"),
    ({"model": "mock-1", "input": "x", "previous_response_id": "resp_nope"}, "previous_response_id",
     "previous_response_not_found"),
])
def test_compact_errors_are_envelopes(client, body, param, code):
    r = client.post("/responses/compact", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param and r.json()["error"]["code"] == code


@pytest.mark.parametrize("blob", ["", "gAAAAABp-not-ours", "rgc1.!!!", "rgc1.e30"])  # e30 = {}
def test_a_compaction_item_that_is_not_ours_is_400(client, blob):
    r = client.post("/responses", json={"model": "mock-1", "input": [
        user("x"), {"type": "compaction", "encrypted_content": blob}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[1].encrypted_content", r.text
