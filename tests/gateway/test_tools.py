"""Function tools: request translation, output items (streamed and not), input items, round trips."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 2},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "hourly": {"type": "boolean"},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                      "required": ["lat", "lon"], "additionalProperties": False},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["city", "unit", "days", "hourly", "where", "tags"],
        "additionalProperties": False,
    },
    "strict": True,
}
ADD = {"type": "function", "name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}
NOOP = {"type": "function", "name": "noop"}


def calls_of(response: dict) -> list[dict]:
    return [item for item in response["output"] if item["type"] == "function_call"]


def create(client, stream, streamed: bool, body: dict, check_events, validate) -> dict:
    if streamed:
        r, _, events = stream(client, body)
        assert r.status_code == 200
        return check_events(events)
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    return validate(r.json())


def test_tools_and_choice_translate_to_chat(client, target):
    body = {"model": "mock-1", "input": "weather", "tools": [WEATHER, ADD],
            "tool_choice": {"type": "function", "name": "add"}, "parallel_tool_calls": False}
    out = client.post("/responses", json=body).json()
    sent = target.upstream.app.state.requests[-1]
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                          "parameters": WEATHER["parameters"], "strict": True}},
        {"type": "function", "function": {"name": "add", "parameters": ADD["parameters"]}},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert sent["parallel_tool_calls"] is False
    assert out["tool_choice"] == {"type": "function", "name": "add"} and out["parallel_tool_calls"] is False
    assert out["tools"][0] == WEATHER
    assert out["tools"][1] == {**ADD, "description": None, "strict": None}
    assert [c["name"] for c in calls_of(out)] == ["add"]


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_string_tool_choice_passes_through(client, target, choice):
    out = client.post("/responses", json={"model": "mock-1", "input": "x", "tools": [ADD], "tool_choice": choice}).json()
    assert target.upstream.app.state.requests[-1]["tool_choice"] == choice
    assert out["tool_choice"] == choice
    assert bool(calls_of(out)) is (choice == "required")


@pytest.mark.parametrize("streamed", [False, True])
def test_forced_call_is_a_valid_function_call_item(client, stream, check_events, validate, streamed):
    body = {"model": "mock-1", "input": "What is the weather?", "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"}}
    out = create(client, stream, streamed, body, check_events, validate)
    assert out["status"] == "completed" and out["incomplete_details"] is None
    (call,) = out["output"]  # no message item: the upstream produced no text
    assert call["type"] == "function_call" and call["status"] == "completed" and call["name"] == "get_weather"
    assert re.fullmatch(r"fc_[0-9a-f]+", call["id"]) and re.fullmatch(r"call_[0-9a-f]+", call["call_id"])
    jsonschema.validate(json.loads(call["arguments"]), WEATHER["parameters"])


def test_streamed_arguments_are_accumulated_from_several_deltas(client, stream, check_events):
    _, _, events = stream(client, {"model": "mock-1", "input": "x", "tools": [WEATHER], "tool_choice": "required"})
    check_events(events)
    types = [e["type"] for e in events]
    assert types[2] == "response.output_item.added" and types[-3] == "response.function_call_arguments.done"
    added = events[2]["item"]
    assert added["arguments"] == "" and added["status"] == "in_progress" and added["call_id"].startswith("call_")
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) > 3
    done = events[-3]
    assert done["arguments"] == "".join(d["delta"] for d in deltas) and done["name"] == "get_weather"
    assert events[-2]["item"]["arguments"] == done["arguments"]


@pytest.mark.parametrize("streamed", [False, True])
def test_parallel_calls_get_dense_indexes_and_distinct_ids(client, stream, check_events, validate, streamed):
    # a prompt for which the mock finds two of the three tools relevant (mock_tool_use.py)
    body = {"model": "mock-1", "input": "What is the weather in Paris? And add 2 and 3.",
            "tools": [WEATHER, ADD, NOOP], "tool_choice": "required"}
    out = create(client, stream, streamed, body, check_events, validate)
    calls = calls_of(out)
    assert [c["name"] for c in calls] == ["get_weather", "add"]
    assert len({c["call_id"] for c in calls}) == 2 and len({c["id"] for c in calls}) == 2
    body["parallel_tool_calls"] = False
    assert len(calls_of(create(client, stream, streamed, body, check_events, validate))) == 1


@pytest.mark.parametrize("streamed", [False, True])
def test_allowed_tools_sends_only_those(client, target, stream, check_events, validate, streamed):
    body = {"model": "mock-1", "input": "x", "tools": [WEATHER, ADD, NOOP],
            "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "add"}]}}
    out = create(client, stream, streamed, body, check_events, validate)
    sent = target.upstream.app.state.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["add"] and sent["tool_choice"] == "required"
    assert [c["name"] for c in calls_of(out)] == ["add"]
    assert out["tool_choice"] == body["tool_choice"] and len(out["tools"]) == 3


@pytest.mark.parametrize("streamed", [False, True])
def test_call_to_a_tool_not_allowed_fails_the_response(client, stream, check_events, validate, streamed, monkeypatch):
    from reference_gateway.tools import ToolSetup

    monkeypatch.setattr(ToolSetup, "chat_fields", lambda self, parallel: {
        "tools": [{"type": "function", "function": {"name": "noop"}}], "tool_choice": "required"})
    body = {"model": "mock-1", "input": "x", "tools": [ADD, NOOP],
            "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "add"}]}}
    if streamed:
        _, _, events = stream(client, body)
        assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
        assert events[-2]["error"]["code"] == "tool_not_allowed"
        out = check_events(events)
    else:
        out = validate(client.post("/responses", json=body).json())
    # One code for one failure: the error event's, the failed response's (streamed or not).
    assert out["status"] == "failed" and out["error"]["code"] == "tool_not_allowed"
    assert "noop" in out["error"]["message"]


@pytest.mark.parametrize("streamed", [False, True])
def test_incomplete_call_when_tokens_run_out(client, stream, check_events, validate, streamed):
    body = {"model": "mock-1", "input": "x", "tools": [WEATHER], "tool_choice": "required", "max_output_tokens": 16}
    out = create(client, stream, streamed, body, check_events, validate)
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert calls_of(out)[0]["status"] == "incomplete"


@pytest.mark.parametrize("streamed", [False, True])
def test_only_the_call_the_cut_interrupted_is_incomplete(client, stream, check_events, validate, streamed):
    """Two calls, the budget runs out inside the second: the first was finished (completed),
    only the second is incomplete (translate.py; the checker's spec.item.incomplete_last).
    The mock streams each call's arguments, {"query":"<the prompt>"} (82 characters here), in
    7-character tokens: 13 tokens a call with its name, so 20 cut the second one."""
    lookup = {"type": "function", "name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}}}
    # "lookup" makes both tools relevant to the mock, so it calls both (mock_tool_use.py)
    prompt = "lookup " + "x" * 63
    body = {"model": "mock-1", "input": prompt, "tools": [lookup, {**lookup, "name": "lookup_again"}],
            "tool_choice": "required", "max_output_tokens": 20}
    out = create(client, stream, streamed, body, check_events, validate)
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}
    calls = calls_of(out)
    assert [c["name"] for c in calls] == ["lookup", "lookup_again"]
    assert [c["status"] for c in calls] == ["completed", "incomplete"]
    assert json.loads(calls[0]["arguments"]) == {"query": prompt}  # whole
    assert calls[1]["arguments"] != calls[0]["arguments"]  # cut


def test_input_function_items_become_chat_tool_messages(client, target):
    body = {"model": "mock-1", "tools": [ADD], "input": [
        {"role": "user", "content": "add 1 and 2"},
        {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": '{"a":1,"b":2}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "3"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]}
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    assert target.upstream.app.state.requests[-1]["messages"] == [
        {"role": "user", "content": "add 1 and 2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a":1,"b":2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    assert r.json()["output"][0]["type"] == "message"  # a tool result is answered with text


def test_unmatched_function_call_output_names_the_call_id(client):
    body = {"model": "mock-1", "input": [
        {"type": "function_call", "call_id": "call_a", "name": "add", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_b", "output": "3"}]}
    r = client.post("/responses", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "input", "invalid_value")
    assert "call_b" in error["message"]


def test_auto_choice_calls_when_asked_for_a_tool(client):
    out = client.post("/responses", json={"model": "mock-1", "input": "Please call the tool", "tools": [ADD]}).json()
    assert [c["name"] for c in calls_of(out)] == ["add"]
    out = client.post("/responses", json={"model": "mock-1", "input": "just chat", "tools": [ADD]}).json()
    assert calls_of(out) == [] and out["output"][0]["type"] == "message"
