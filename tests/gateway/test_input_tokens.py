"""``POST /v1/responses/input_tokens`` (input_tokens.py): counted by the upstream's tokenizer
when it has one (vLLM's /tokenize; the embedded mock has it), else estimated, and said which."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import RunningServer, start_gateway

SENTENCE = "the quick brown fox jumps over the lazy dog"


def test_sdk_count_matches_the_usage_a_create_reports(target):
    sdk = openai.OpenAI(base_url=target.base_url, api_key="x", max_retries=0)
    raw = sdk.responses.input_tokens.with_raw_response.count(model="mock-1", input=SENTENCE,
                                                             instructions="be brief")
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert raw.headers["x-input-tokens-source"] == "upstream"
    created = sdk.responses.create(model="mock-1", input=SENTENCE, instructions="be brief")
    assert counted.input_tokens == created.usage.input_tokens == 11


def test_previous_response_and_no_model_or_input(client, target):
    first = client.post("/responses", json={"model": "mock-1", "input": SENTENCE}).json()
    r = client.post("/responses/input_tokens", json={"previous_response_id": first["id"]})
    assert r.status_code == 200, r.text
    # the conversation so far: this turn's input is absent, the earlier one and its answer count
    assert r.json()["input_tokens"] == len(SENTENCE.split()) + len(first["output"][0]["content"][0]["text"].split())
    assert r.headers["x-input-tokens-source"] == "upstream"


def test_tools_are_sent_to_the_tokenizer(client, target):
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]
    r = client.post("/responses/input_tokens", json={"model": "mock-1", "input": "hi", "tools": tools})
    assert r.status_code == 200 and r.json() == {"object": "response.input_tokens", "input_tokens": 1}


@pytest.mark.parametrize("body, status, param, code", [
    ({"model": "mock-1", "input": "x", "stream": True}, 400, "stream", "unknown_parameter"),
    ({"model": "mock-1", "input": "x", "conversation": "conv_1"}, 400, "conversation", "unsupported_parameter"),
    ({"model": "mock-1", "input": 5}, 400, "input", "invalid_type"),
    ({"model": "mock-1", "input": "x", "previous_response_id": "resp_nope"}, 400, "previous_response_id",
     "previous_response_not_found"),
    ({"model": "mock-1", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     400, "input[0].content[0].file_id", "unsupported_parameter"),
    ([1, 2], 400, None, "invalid_type"),
])
def test_bad_bodies_are_envelopes(client, body, status, param, code):
    r = client.post("/responses/input_tokens", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, code)


def test_personality_is_accepted_and_ignored(client):
    plain = client.post("/responses/input_tokens", json={"input": SENTENCE}).json()
    styled = client.post("/responses/input_tokens", json={"input": SENTENCE, "personality": "friendly"}).json()
    assert plain == styled


def test_the_route_is_not_a_response_id(client):
    assert client.post("/responses/input_tokens", json={"input": "x"}).status_code == 200
    r = client.get("/responses/input_tokens")  # GET is retrieve: no response has that id
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def upstream_without_tokenizer(tokenize_status: int):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        status, body = (tokenize_status, {"detail": "Not Found"}) if scope["path"] == "/tokenize" \
            else (404, {"error": {"message": "no", "type": "x", "param": None, "code": None}})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})
    return app


@pytest.mark.parametrize("tokenize_status", [404, 405])
def test_estimate_when_the_upstream_has_no_tokenizer(tokenize_status):
    with RunningServer(upstream_without_tokenizer(tokenize_status), name="no-tokenizer") as upstream, \
            start_gateway(GatewayConfig(upstream_url=upstream.origin + "/v1")) as gateway, \
            httpx.Client(base_url=gateway.base_url, timeout=5) as client:
        r = client.post("/responses/input_tokens", json={"model": "m", "input": "a" * 400})
        assert r.status_code == 200, r.text
        assert r.headers["x-input-tokens-source"] == "estimate"
        assert r.json()["input_tokens"] == 3 + 3 + 100  # primer + one message + 400 chars / 4
        image = {"type": "input_image", "image_url": "https://example.invalid/a.png"}
        r = client.post("/responses/input_tokens", json={"model": "m", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "a" * 400}, image]}]})
        assert r.json()["input_tokens"] == 106 + 85


def test_a_failing_tokenizer_is_an_envelope_not_an_estimate():
    with RunningServer(upstream_without_tokenizer(503), name="broken-tokenizer") as upstream, \
            start_gateway(GatewayConfig(upstream_url=upstream.origin + "/v1")) as gateway, \
            httpx.Client(base_url=gateway.base_url, timeout=5) as client:
        r = client.post("/responses/input_tokens", json={"model": "m", "input": "x"})
        assert r.status_code == 502, r.text
        assert r.json()["error"]["code"] == "upstream_error"
