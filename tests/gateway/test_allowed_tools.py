"""``allowed_tools`` is a hard constraint (Open Responses: "any tool call to a tool not listed MUST
be rejected or suppressed by the server"): a call the upstream makes to a tool it was not allowed
never reaches the client as a function_call; the response fails (tools.py's docstring). The mock
upstream's ``mock-call:NAME`` model calls NAME whatever it was offered, so the upstream really
misbehaves here (test_tools.py covers the same with a patched gateway)."""

from __future__ import annotations

import httpx
import pytest

ADD = {"type": "function", "name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}
WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ONLY_ADD = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "add"}]}


def function_calls(items: list[dict]) -> list[dict]:
    return [i for i in items if i.get("type") == "function_call"]


def test_mock_call_model_calls_what_it_was_not_offered(target):
    with httpx.Client(base_url=target.upstream.base_url, timeout=5.0) as c:
        r = c.post("/chat/completions", json={"model": "mock-call:get_weather", "tool_choice": "none",
                                              "messages": [{"role": "user", "content": "hi"}]}).json()
        answered = c.post("/chat/completions", json={"model": "mock-call:get_weather", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "sunny"}]}).json()
    assert [c["function"] for c in r["choices"][0]["message"]["tool_calls"]] == [
        {"name": "get_weather", "arguments": "{}"}]
    assert r["choices"][0]["finish_reason"] == "tool_calls"
    assert answered["choices"][0]["finish_reason"] == "stop"  # a tool result is answered with text


@pytest.mark.parametrize("mode", ["auto", "required"])
def test_non_streamed_call_to_a_tool_not_allowed_fails_without_it(client, target, validate, mode):
    body = {"model": "mock-call:get_weather", "input": "weather in Rome?", "tools": [WEATHER, ADD],
            "tool_choice": {**ONLY_ADD, "mode": mode}}
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    out = validate(r.json())
    sent = target.upstream.app.state.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["add"]  # it was never offered
    assert out["status"] == "failed" and function_calls(out["output"]) == []
    assert out["error"]["code"] == "tool_not_allowed" and "get_weather" in out["error"]["message"]
    stored = client.get(f"/responses/{out['id']}").json()
    assert stored["status"] == "failed" and function_calls(stored["output"]) == []


def test_streamed_call_to_a_tool_not_allowed_never_shows(client, stream, check_events):
    body = {"model": "mock-call:get_weather", "input": "weather in Rome?", "tools": [WEATHER, ADD],
            "tool_choice": ONLY_ADD}
    r, raw, events = stream(client, body)
    assert r.status_code == 200
    out = check_events(events)
    assert "get_weather" not in "".join(
        str(e) for e in events if e["type"] not in ("error", "response.failed", "response.created",
                                                   "response.in_progress"))
    assert not any(e["type"].startswith("response.function_call_arguments") for e in events)
    assert not any(e.get("item", {}).get("type") == "function_call" for e in events)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["error"]["code"] == "tool_not_allowed"
    assert out["status"] == "failed" and function_calls(out["output"]) == []
    stored = client.get(f"/responses/{out['id']}").json()
    assert stored["status"] == "failed" and function_calls(stored["output"]) == []


@pytest.mark.parametrize("streamed", [False, True])
def test_a_call_to_an_allowed_tool_still_comes_through(client, stream, check_events, validate, streamed):
    body = {"model": "mock-call:add", "input": "2 + 3?", "tools": [WEATHER, ADD], "tool_choice": ONLY_ADD}
    if streamed:
        out = check_events(stream(client, body)[2])
    else:
        out = validate(client.post("/responses", json=body).json())
    assert out["status"] == "completed"
    assert [(c["name"], c["arguments"]) for c in function_calls(out["output"])] == [("add", "{}")]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_call_to_an_undeclared_tool_fails_too(client, stream, check_events, validate, streamed):
    body = {"model": "mock-call:rm_rf", "input": "2 + 3?", "tools": [ADD]}  # no allowed_tools: all of tools
    if streamed:
        out = check_events(stream(client, body)[2])
    else:
        out = validate(client.post("/responses", json=body).json())
    assert out["status"] == "failed" and function_calls(out["output"]) == [] and "rm_rf" in out["error"]["message"]
