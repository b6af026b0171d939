"""text.format (json_schema, json_object) and reasoning items from the upstream's reasoning_content."""

from __future__ import annotations

import json

import jsonschema
import pytest

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                    "additionalProperties": False},
        "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    },
    "required": ["name", "age", "tags", "address", "score"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True}


def create(client, stream, check_events, validate, streamed: bool, body: dict) -> dict:
    if streamed:
        _, _, events = stream(client, body)
        return check_events(events)
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    return validate(r.json())


@pytest.mark.parametrize("streamed", [False, True])
def test_json_schema_format(client, target, stream, check_events, validate, streamed):
    out = create(client, stream, check_events, validate, streamed,
                 {"model": "mock-1", "input": "a person", "text": {"format": JSON_SCHEMA_FORMAT}})
    sent = target.upstream.app.state.requests[-1]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "person", "schema": SCHEMA, "strict": True}}
    # Echoed as given, with description null when not given (Open Responses requires the key).
    assert out["text"] == {"format": {**JSON_SCHEMA_FORMAT, "description": None},
                           "verbosity": "medium"}
    jsonschema.validate(json.loads(out["output"][0]["content"][0]["text"]), SCHEMA)


def test_json_schema_text_streams_in_several_deltas(client, stream, check_events):
    _, _, events = stream(client, {"model": "mock-1", "input": "p", "text": {"format": JSON_SCHEMA_FORMAT}})
    check_events(events)
    assert sum(e["type"] == "response.output_text.delta" for e in events) > 3


@pytest.mark.parametrize("streamed", [False, True])
def test_json_object_format(client, target, stream, check_events, validate, streamed):
    out = create(client, stream, check_events, validate, streamed,
                 {"model": "mock-1", "input": "json please", "text": {"format": {"type": "json_object"}}})
    assert target.upstream.app.state.requests[-1]["response_format"] == {"type": "json_object"}
    assert out["text"]["format"] == {"type": "json_object"}
    assert isinstance(json.loads(out["output"][0]["content"][0]["text"]), dict)


def test_text_format_text_sends_no_response_format(client, target):
    client.post("/responses", json={"model": "mock-1", "input": "x", "text": {"format": {"type": "text"}}})
    assert "response_format" not in target.upstream.app.state.requests[-1]


@pytest.mark.parametrize("streamed", [False, True])
def test_reasoning_item_comes_before_the_message(client, stream, check_events, validate, streamed):
    out = create(client, stream, check_events, validate, streamed, {"model": "mock-reasoning", "input": "think"})
    reasoning, message = out["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [] and reasoning["status"] == "completed"
    assert len(reasoning["content"]) == 1 and reasoning["content"][0]["type"] == "reasoning_text"
    assert len(reasoning["content"][0]["text"].split()) == 8
    assert message["type"] == "message" and out["usage"]["output_tokens_details"]["reasoning_tokens"] == 8


def test_reasoning_stream_grammar(client, stream, check_events):
    _, _, events = stream(client, {"model": "mock-reasoning", "input": "think"})
    check_events(events)
    types = [e["type"] for e in events]
    n = types.count("response.reasoning_text.delta")
    assert n == 8
    assert types[2:7 + n] == (["response.output_item.added", "response.content_part.added"]
                              + ["response.reasoning_text.delta"] * n
                              + ["response.reasoning_text.done", "response.content_part.done",
                                 "response.output_item.done"])
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert all(e["content_index"] == 0 for e in events if e["type"].startswith("response.reasoning_text"))
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["content"] == []


def test_reasoning_effort_passes_through(client, target):
    out = client.post("/responses", json={"model": "mock-1", "input": "x", "reasoning": {"effort": "low"}}).json()
    assert target.upstream.app.state.requests[-1]["reasoning_effort"] == "low"
    assert out["reasoning"] == {"effort": "low", "summary": None}


def test_reasoning_and_tool_call_items_can_be_fed_back(client):
    first = client.post("/responses", json={"model": "mock-reasoning", "input": "x", "store": False,
                                            "tools": [{"type": "function", "name": "f"}], "tool_choice": "required"})
    output = first.json()["output"]
    assert [i["type"] for i in output] == ["reasoning", "function_call"]
    r = client.post("/responses", json={"model": "mock-1", "input": output + [
        {"type": "function_call_output", "call_id": output[1]["call_id"], "output": "done"}]})
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
