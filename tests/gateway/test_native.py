"""The gateway in front of a native /v1/responses (reference_gateway/native.py).

Two upstreams: a real one (another reference gateway, itself over the mock upstream), and a
fake that breaks each contract rule the gateway claims to hold (N2, N5, N6, N7)."""

from __future__ import annotations

import json

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from harness.core.verdict import judge_stream_body
from reference_gateway.config import GatewayConfig
from reference_gateway.launch import RunningServer, start_gateway

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def native(target):
    """The gateway under test in front of ``target`` (the embedded gateway) as a native upstream."""
    server = start_gateway(GatewayConfig(upstream_url=target.base_url, upstream_api_kind="responses"))
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as client:
        yield client
    server.close()


def judged_stream(client: httpx.Client, body: dict):
    with client.stream("POST", "/responses", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        raw = r.read()
    judged = judge_stream_body(raw, "openai")
    return judged, [f for f in judged.log.findings if f.check in judged.log.applied]


def test_responses_are_the_gateways_own_and_stored(native, target):
    r = native.post("/responses", json={"model": "mock-1", "input": "hi", "metadata": {"k": "v"}})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "completed" and body["metadata"] == {"k": "v"}
    assert native.get(f"/responses/{body['id']}").json() == body  # GET is the gateway's
    upstream_view = httpx.get(f"{target.base_url}/responses/{body['id']}", timeout=TIMEOUT_S)
    assert upstream_view.status_code == 404  # the upstream stored nothing of it (store: false, own ids)


def test_previous_response_id_is_expanded_by_the_gateway(native):
    first = native.post("/responses", json={"model": "mock-1", "input": "one"}).json()
    second = native.post("/responses", json={"model": "mock-echo", "input": "two",
                                             "previous_response_id": first["id"]}).json()
    seen = json.loads(second["output"][0]["content"][0]["text"])
    assert [m["content"] for m in seen] == ["one", first["output"][0]["content"][0]["text"], "two"]
    assert second["previous_response_id"] == first["id"]


def test_streams_relay_clean(native):
    judged, failed = judged_stream(native, {"model": "mock-1", "input": "hi", "max_output_tokens": 16})
    assert not failed, failed[:3]
    assert judged.terminal_type == "response.incomplete"
    assert native.get(f"/responses/{judged.response['id']}").json() == judged.response


def test_builtin_tools_and_background_are_refused(native):
    for extra, param in (({"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search_preview"}}, "tools"),
                         ({"background": True}, "background"),
                         ({"include": ["reasoning.encrypted_content"]}, "include")):
        r = native.post("/responses", json={"model": "mock-1", "input": "x", **extra})
        assert r.status_code == 400 and r.json()["error"]["param"] == param


# -- a native upstream that breaks the contract ---------------------------------------------

def _item(text: str) -> dict:
    return {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


STRAY_CALL = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "get_weather",
              "arguments": "{}", "status": "completed"}


def _events(mode: str) -> list[dict]:
    started = {"id": "resp_up", "object": "response", "status": "in_progress", "output": []}
    if mode == "stray_call":  # a function_call to a tool the request did not allow (N8)
        return [{"type": "response.created", "sequence_number": 0, "response": started},
                {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
                 "item": {**STRAY_CALL, "arguments": "", "status": "in_progress"}},
                {"type": "response.function_call_arguments.delta", "sequence_number": 2, "output_index": 0,
                 "item_id": "fc_1", "delta": "{}"},
                {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": STRAY_CALL},
                {"type": "response.completed", "sequence_number": 4,
                 "response": {**started, "status": "completed", "output": [STRAY_CALL]}}]
    events = [{"type": "response.created", "sequence_number": 7, "response": started},
              {"type": "response.output_item.added", "sequence_number": 9, "output_index": 0,
               "item": {**_item(""), "status": "in_progress", "content": []}}]
    if mode == "no_terminal":
        return events
    events.append({"type": "response.output_item.done", "sequence_number": 11, "output_index": 0, "item": _item("hi")})
    usage = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2}
    final = {**started, "status": "incomplete", "output": [_item("hi")], "usage": usage,
             "incomplete_details": {"reason": "max_output_tokens"}}
    if mode == "other_output":
        final = {**final, "status": "completed", "incomplete_details": None, "output": [_item("something else")]}
    if mode == "bad_status":
        final = {**final, "status": "in_progress"}
    events.append({"type": "response.completed", "sequence_number": 12, "response": final})
    return events


def _fake_app() -> Starlette:
    async def responses(request: Request):
        body = await request.json()
        mode = body["model"]
        if not body["stream"] and mode == "stray_call":
            return JSONResponse(_events(mode)[-1]["response"])
        if not body["stream"]:
            return JSONResponse({"id": "resp_up", "object": "response", "status": "queued", "output": []})

        async def frames():
            for event in _events(mode):
                yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    return Starlette(routes=[Route("/v1/responses", responses, methods=["POST"]), Route("/v1/models", models)])


@pytest.fixture(scope="module")
def against_fake():
    with RunningServer(_fake_app(), name="fake native upstream") as fake:
        server = start_gateway(GatewayConfig(upstream_url=fake.base_url, upstream_api_kind="responses"))
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as client:
            yield client
        server.close()


def test_n3_n4_n5_renumbered_own_lifecycle_and_terminal_by_status(against_fake):
    judged, failed = judged_stream(against_fake, {"model": "incomplete_as_completed", "input": "x"})
    assert not failed, failed[:3]  # contiguous from 0, the gateway's created/in_progress
    assert judged.terminal_type == "response.incomplete"  # N5: vLLM's response.completed + incomplete
    assert judged.response["id"].startswith("resp_") and judged.response["id"] != "resp_up"


def test_n6_a_stream_without_terminal_fails_and_closes_its_items(against_fake):
    judged, failed = judged_stream(against_fake, {"model": "no_terminal", "input": "x"})
    assert not failed, failed[:3]
    assert judged.terminal_type == "response.failed"
    assert judged.response["output"][0]["status"] == "incomplete"
    assert against_fake.get(f"/responses/{judged.response['id']}").json()["status"] == "failed"


def test_n7_the_streamed_items_win(against_fake):
    judged, failed = judged_stream(against_fake, {"model": "other_output", "input": "x"})
    assert not failed, failed[:3]
    assert judged.response["output"][0]["content"][0]["text"] == "hi"


def test_n2_a_final_status_that_is_not_final_is_502(against_fake):
    judged, _ = judged_stream(against_fake, {"model": "bad_status", "input": "x"})
    assert judged.terminal_type == "response.failed"
    r = against_fake.post("/responses", json={"model": "anything", "input": "x"})  # non-streamed: queued
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"


ALLOWED_ONLY_ADD = {
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
              {"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "add"}]}}


def test_n8_a_call_to_a_tool_not_allowed_is_never_relayed(against_fake):
    judged, failed = judged_stream(against_fake, {"model": "stray_call", "input": "x", **ALLOWED_ONLY_ADD})
    assert not failed, failed[:3]
    assert judged.terminal_type == "response.failed" and judged.response["output"] == []
    assert not any((e.get("item") or {}).get("type") == "function_call"
                   or e["type"].startswith("response.function_call") for e in judged.events)
    assert [e["type"] for e in judged.events][-2:] == ["error", "response.failed"]
    r = against_fake.post("/responses", json={"model": "stray_call", "input": "x", **ALLOWED_ONLY_ADD})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "failed" and body["output"] == []
    assert "get_weather" in body["error"]["message"]
    allowed = {**ALLOWED_ONLY_ADD, "tool_choice": "auto"}  # every tool allowed: the call is relayed
    r = against_fake.post("/responses", json={"model": "stray_call", "input": "x", **allowed})
    assert r.json()["status"] == "completed" and r.json()["output"][0]["name"] == "get_weather"
