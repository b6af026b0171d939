"""``namespace`` tools (reference_gateway/tools.py): offered to a chat upstream as
``NAMESPACE__NAME``, a call returned as OpenAI returns it (``name`` + ``namespace``), its
``function_call_output`` routed back."""

from __future__ import annotations

from openai.types.responses import Response

NAMESPACE = {"type": "namespace", "name": "agents", "description": "Sub-agents.", "tools": [
    {"type": "function", "name": "spawn", "description": "Start one.", "strict": False,
     "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}}]}
PLAIN = {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}}


def test_namespaced_functions_are_offered_upstream_under_joined_names(client, target):
    r = client.post("/responses", json={"model": "mock-1", "input": "hello", "tools": [PLAIN, NAMESPACE]})
    assert r.status_code == 200, r.text
    sent = target.upstream.app.state.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["exec_command", "agents__spawn"]
    assert sent["tools"][1]["function"]["parameters"] == NAMESPACE["tools"][0]["parameters"]
    assert r.json()["tools"][1]["type"] == "namespace"  # echoed as given
    Response.model_validate(r.json())


def test_a_namespaced_call_comes_back_with_its_namespace_and_its_output_goes_back(client, target, stream):
    body = {"model": "mock-call:agents__spawn", "input": "go", "tools": [PLAIN, NAMESPACE]}
    made = client.post("/responses", json=body).json()
    call = made["output"][-1]
    assert (call["type"], call["name"], call["namespace"]) == ("function_call", "spawn", "agents")
    assert Response.model_validate(made).output[-1].namespace == "agents"
    _, _, events = stream(client, body)
    done = [e for e in events if e["type"] == "response.output_item.done"][-1]["item"]
    assert (done["name"], done["namespace"]) == ("spawn", "agents")
    args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert args_done["name"] == "spawn"
    # stateless follow-up: the call and its output, as Codex sends them
    follow = {"model": "mock-echo", "tools": [PLAIN, NAMESPACE], "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": call["call_id"], "name": "spawn", "namespace": "agents",
         "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "spawned"}]}
    r = client.post("/responses", json=follow)
    assert r.status_code == 200, r.text
    messages = target.upstream.app.state.requests[-1]["messages"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "agents__spawn"
    assert messages[2] == {"role": "tool", "tool_call_id": call["call_id"], "content": "spawned"}


def test_a_chain_keeps_the_namespace(client, target):
    made = client.post("/responses", json={"model": "mock-call:agents__spawn", "input": "go",
                                           "tools": [NAMESPACE]}).json()
    call = made["output"][-1]
    r = client.post("/responses", json={"model": "mock-1", "previous_response_id": made["id"], "tools": [NAMESPACE],
                                        "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                                   "output": "ok"}]})
    assert r.status_code == 200, r.text
    messages = target.upstream.app.state.requests[-1]["messages"]
    assert [c["function"]["name"] for m in messages for c in m.get("tool_calls") or []] == ["agents__spawn"]


def test_a_call_outside_the_namespace_is_not_allowed(client):
    r = client.post("/responses", json={"model": "mock-call:spawn", "input": "go", "tools": [NAMESPACE]})
    assert r.json()["status"] == "failed" and r.json()["error"]["code"] == "tool_not_allowed"
