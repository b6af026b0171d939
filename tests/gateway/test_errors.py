"""Every refusal is an OpenAI error envelope with the right status, type, code and param."""

from __future__ import annotations

import httpx
import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_gateway
from reference_gateway.store_contract import ResponseStore

OK = {"model": "mock-1", "input": "hi"}


def assert_envelope(r: httpx.Response, status: int, *, code: str | None, param: str | None = None,
                    type: str = "invalid_request_error") -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(r.json()) == {"error"} and set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert (error["type"], error["code"], error["param"]) == (type, code, param)
    return error


@pytest.mark.parametrize(
    "body, param, code",
    [
        ({"input": "hi"}, "model", "missing_required_parameter"),
        ({"model": 5, "input": "hi"}, "model", "invalid_type"),
        ({"model": "", "input": "hi"}, "model", "empty_string"),
        ({"model": "mock-1"}, "input", "missing_required_parameter"),
        ({**OK, "input": 42}, "input", "invalid_type"),
        ({**OK, "input": []}, "input", "empty_array"),
        ({**OK, "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({**OK, "input": [{"role": "user", "content": 1}]}, "input[0].content", "invalid_type"),
        ({**OK, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0].image_url", "invalid_value"),
        ({**OK, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
         "input[0].content[0].file_id", "unsupported_parameter"),
        ({**OK, "input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
         "input[0].content[0].type", "unsupported_parameter"),
        ({**OK, "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input", "invalid_value"),
        ({**OK, "input": [{"type": "computer_call", "id": "x"}]}, "input[0].type", "unsupported_parameter"),
        ({**OK, "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
         "input[0].call_id", "missing_required_parameter"),
        ({**OK, "input": [{"type": "function_call_output", "call_id": "c"}]},
         "input[0].output", "missing_required_parameter"),
        ({**OK, "frobnicate": 1}, "frobnicate", "unknown_parameter"),
        ({**OK, "temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({**OK, "temperature": -1}, "temperature", "decimal_below_min_value"),
        ({**OK, "temperature": "hot"}, "temperature", "invalid_type"),
        ({**OK, "temperature": True}, "temperature", "invalid_type"),
        ({**OK, "top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({**OK, "max_output_tokens": 15}, "max_output_tokens", "integer_below_min_value"),
        ({**OK, "max_output_tokens": 20.5}, "max_output_tokens", "invalid_type"),
        ({**OK, "max_output_tokens": "20"}, "max_output_tokens", "invalid_type"),
        ({**OK, "metadata": [1]}, "metadata", "invalid_type"),
        ({**OK, "metadata": {str(i): "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({**OK, "metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({**OK, "metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({**OK, "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
        ({**OK, "stream": "yes"}, "stream", "invalid_type"),
        ({**OK, "store": 0}, "store", "invalid_type"),
        ({**OK, "instructions": 5}, "instructions", "invalid_type"),
        ({**OK, "parallel_tool_calls": "x"}, "parallel_tool_calls", "invalid_type"),
        ({**OK, "user": 5}, "user", "invalid_type"),
        ({**OK, "text": {"format": {"type": "grammar"}}}, "text.format", "unsupported_parameter"),
        ({**OK, "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name",
         "missing_required_parameter"),
        ({**OK, "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema",
         "missing_required_parameter"),
        ({**OK, "text": {"format": {"type": "json_schema", "name": "n", "schema": []}}}, "text.format.schema",
         "invalid_type"),
        ({**OK, "text": {"format": {"type": "json_schema", "name": "a b", "schema": {}}}}, "text.format.name",
         "invalid_value"),
        ({**OK, "tools": {"type": "function"}}, "tools", "invalid_type"),
        ({**OK, "tools": [{"type": "web_search", "search_context_size": "huge"}]}, "tools[0].search_context_size",
         "invalid_value"),
        ({**OK, "tools": [{"type": "web_search", "filters": {"allowed_domains": "a.com"}}]},
         "tools[0].filters.allowed_domains", "invalid_type"),
        ({**OK, "tools": [{"type": "namespace", "name": "ns", "tools": []}]}, "tools[0].tools", "invalid_type"),
        ({**OK, "tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "custom", "name": "c"}]}]},
         "tools[0].tools[0].type", "unsupported_parameter"),
        ({**OK, "tools": [{"type": "namespace", "name": "n" * 40, "tools": [{"type": "function", "name": "f" * 30}]}]},
         "tools[0].tools[0].name", "invalid_value"),
        ({**OK, "tools": [{"type": "function", "name": "ns__f"},
                          {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]}]},
         "tools", "invalid_value"),
        ({**OK, "client_metadata": {"k": 1}}, "client_metadata.k", "invalid_type"),
        ({**OK, "tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
        ({**OK, "tools": [{"type": "function", "name": "a b"}]}, "tools[0].name", "invalid_value"),
        ({**OK, "tools": [{"type": "function", "name": "f", "parameters": 1}]}, "tools[0].parameters", "invalid_type"),
        ({**OK, "tools": [{"type": "function", "name": "f"}] * 2}, "tools", "invalid_value"),
        ({**OK, "tool_choice": "required"}, "tool_choice", "invalid_value"),
        ({**OK, "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({**OK, "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}},
         "tool_choice.name", "invalid_value"),
        ({**OK, "tools": [{"type": "function", "name": "f"}],
          "tool_choice": {"type": "allowed_tools", "mode": "any", "tools": [{"type": "function", "name": "f"}]}},
         "tool_choice.mode", "invalid_value"),
        ({**OK, "tools": [{"type": "function", "name": "f"}],
          "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "g"}]}},
         "tool_choice.tools[0].name", "invalid_value"),
        ({**OK, "tool_choice": {"type": "web_search"}}, "tool_choice", "unsupported_parameter"),
        ({**OK, "background": True, "store": False}, "background", "invalid_value"),
        ({**OK, "previous_response_id": "resp_x"}, "previous_response_id", "previous_response_not_found"),
        ({**OK, "previous_response_id": 5}, "previous_response_id", "invalid_type"),
        ({"model": "mock-1", "previous_response_id": "resp_x"}, "input", "missing_required_parameter"),
        ({**OK, "conversation": "conv_1"}, "conversation", "unsupported_parameter"),
        ({**OK, "prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
        ({**OK, "reasoning": {"summary": "verbose"}}, "reasoning.summary", "invalid_value"),
        ({**OK, "reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value"),
        ({**OK, "include": ["message.output_text.logprobs"]}, "include[0]", "unsupported_parameter"),
        ({**OK, "include": ["web_search_call.action.sources", 7]}, "include[1]", "invalid_type"),
        ({**OK, "top_logprobs": 3}, "top_logprobs", "unsupported_parameter"),
        ({**OK, "stream_options": {"include_obfuscation": False}}, "stream_options", "invalid_value"),
    ],
)
def test_bad_input_is_400_naming_the_field(client, target, body, param, code):
    sent_before = len(target.upstream.app.state.requests)
    assert_envelope(client.post("/responses", json=body), 400, code=code, param=param)
    assert len(target.upstream.app.state.requests) == sent_before  # refused before the upstream


@pytest.mark.parametrize("body, message", [
    ({**OK, "input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "content part type 'input_audio' is not supported by this gateway."),
    ({**OK, "tools": [{"type": "computer_use_preview"}]}, "tools of type 'computer_use_preview' is not supported "
     "by this gateway."),
    ({**OK, "top_logprobs": 3}, "'top_logprobs' is not supported by this gateway."),
])
def test_unsupported_messages_quote_each_value_once(client, body, message):
    """A phrase that quotes its own value is not quoted again (errors.unsupported): no
    ``'content part type 'input_image''``."""
    r = client.post("/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["message"] == message


def test_accepted_nulls_and_defaults(client):
    body = {**OK, "instructions": None, "reasoning": {"effort": None, "summary": None}, "background": False,
            "include": [], "tools": [], "tool_choice": "auto", "truncation": "disabled", "service_tier": "auto",
            "text": {"format": {"type": "text"}, "verbosity": "low"}, "previous_response_id": None}
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == {"format": {"type": "text"}, "verbosity": "low"}


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"model": NaN}', b"\xff\xfe"])
def test_invalid_json_is_400(client, content):
    r = client.post("/responses", content=content, headers={"content-type": "application/json"})
    assert_envelope(r, 400, code="invalid_json")


def test_non_object_body_is_400(client):
    assert_envelope(client.post("/responses", json=[OK]), 400, code="invalid_type")


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/responses", content=b'{"model": "mock-1", "input": "hi"}', headers=headers)
    assert_envelope(r, 415, code="unsupported_media_type")


def test_json_content_type_with_charset_is_accepted(client):
    r = client.post("/responses", content=b'{"model": "mock-1", "input": "hi"}',
                    headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_body_over_limit_is_413(make_gateway):
    with make_gateway(max_body_bytes=1024) as c:
        assert_envelope(c.post("/responses", json={**OK, "input": "x" * 2000}), 413, code="request_too_large")

        def chunked():  # no Content-Length: the cap must hold while reading
            yield b'{"model": "mock-1", "input": "'
            for _ in range(10):
                yield b"x" * 200
            yield b'"}'

        r = c.post("/responses", content=chunked(), headers={"content-type": "application/json"})
        assert_envelope(r, 413, code="request_too_large")


def test_unknown_route_404_and_wrong_method_405(client):
    assert_envelope(client.get("/nope"), 404, code="not_found")
    r = client.put("/responses", json=OK)
    assert_envelope(r, 405, code="method_not_allowed")
    assert "POST" in r.headers["allow"]


def test_unknown_response_id_404(client):
    assert_envelope(client.get("/responses/resp_doesnotexist"), 404, code="not_found")
    assert_envelope(client.delete("/responses/resp_doesnotexist"), 404, code="not_found")


@pytest.mark.parametrize("streamed", [False, True])
def test_upstream_500_is_502(client, streamed):
    r = client.post("/responses", json={"model": "mock-error", "input": "hi", "stream": streamed})
    assert_envelope(r, 502, code="upstream_error", type="server_error")


@pytest.mark.parametrize("streamed", [False, True])
def test_upstream_timeout_is_504(make_gateway, streamed):
    with make_gateway(request_timeout_s=0.2) as c:
        r = c.post("/responses", json={"model": "mock-slow", "input": "hi", "stream": streamed})
    assert_envelope(r, 504, code="upstream_timeout", type="server_error")


def test_unreachable_upstream_is_502():
    with start_gateway(GatewayConfig(upstream_url="http://127.0.0.1:9/v1", connect_timeout_s=1)) as gateway:
        with httpx.Client(base_url=gateway.base_url, timeout=5) as c:
            assert_envelope(c.post("/responses", json=OK), 502, code="upstream_error", type="server_error")
            assert_envelope(c.get("/models"), 502, code="upstream_error", type="server_error")


def test_unexpected_exception_is_500_envelope(client, monkeypatch):
    def broken(self, statements):
        raise RuntimeError("disk on fire")

    # every write of a response goes through the store writer's batches (store_writer.py)
    monkeypatch.setattr(ResponseStore, "write_many", broken)
    r = client.post("/responses", json=OK)
    error = assert_envelope(r, 500, code="server_error", type="server_error")
    assert "disk on fire" not in error["message"]


def test_models_and_health(client, target, make_gateway):
    assert client.get("/models").json()["data"][0]["id"] == "mock-1"
    assert client.get(f"{target.gateway.origin}/health").status_code == 200
    with make_gateway(models=("a", "b")) as c:
        listed = c.get("/models").json()
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == ["a", "b"]
