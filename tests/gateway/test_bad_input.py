"""Bad input the fuzzer (harness/run/fuzz.py) sends, one case each: always a 4xx envelope, never a
500; a 400 about a field names it in ``param``. Bodies are sent raw, as the fuzzer sends them.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from reference_gateway.params import MAX_JSON_DEPTH

JSON = {"content-type": "application/json"}
OK = {"model": "mock-1", "input": "hi"}


def post(client: httpx.Client, content: bytes) -> httpx.Response:
    return client.post("/responses", content=content, headers=JSON)


def envelope(r: httpx.Response, status: int, code: str | None, param: str | None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["code"], error["param"]) == (code, param), error
    return error


def test_still_serving(client):
    assert client.post("/responses", json=OK).status_code == 200


@pytest.mark.parametrize("content", [
    b'{"model": "mock-1", "input": "a\xffb"}',  # a byte that is never UTF-8
    b'{"model": "mock-1", "input": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
    b'{"model": "mock-1", "input": "\xc0\xaf"}',  # an overlong encoding
    b'\xef\xbb\xbf{"model": "mock-1", "input": "hi"}',  # a BOM
    b'\xff\xfe{\x00}\x00',  # UTF-16, which json.loads(bytes) would have guessed
])
def test_not_utf8_is_400(client, content):
    envelope(post(client, content), 400, "invalid_json", None)


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
def test_nesting_past_the_parser_is_400_not_500(client, depth, opener, closer):
    nested = opener * depth + b"1" + closer * depth
    envelope(post(client, nested), 400, "invalid_json", None)
    envelope(post(client, b'{"model": "mock-1", "input": "hi", "metadata": ' + nested + b"}"),
             400, "invalid_json", None)
    test_still_serving(client)


def test_nesting_past_the_limit_names_where(client):
    value: object = "x"
    for _ in range(MAX_JSON_DEPTH + 10):
        value = [value]
    error = envelope(client.post("/responses", json={**OK, "metadata": value}), 400, "nesting_too_deep",
                     "metadata" + "[0]" * (MAX_JSON_DEPTH - 1))
    assert str(MAX_JSON_DEPTH) in error["message"]


def test_nesting_within_the_limit_reaches_validation(client):
    value: object = "x"
    for _ in range(MAX_JSON_DEPTH - 5):
        value = [value]
    envelope(client.post("/responses", json={**OK, "metadata": {"k": value}}), 400, "invalid_type",
             "metadata.k")


@pytest.mark.parametrize("content, param", [
    (b'{"model": "mock-1", "input": "a\\ud800b"}', "input"),
    (b'{"model": "mock-1", "input": [{"role": "user", "content": "\\udfff"}]}', "input[0].content"),
    (b'{"model": "mock-1", "input": "hi", "instructions": "\\ud83d"}', "instructions"),
    (b'{"model": "mock-1", "input": "hi", "metadata": {"\\ud800": "x"}}', "metadata.\\ud800"),
    (b'{"\\ud800": 1, "model": "mock-1", "input": "hi"}', "\\ud800"),
])
def test_lone_surrogates_are_400_with_their_path(client, content, param):
    """Valid JSON syntax, but no UTF-8 text can carry them on (to the upstream, to the store)."""
    envelope(post(client, content), 400, "invalid_string", param)


def test_a_surrogate_pair_is_fine(client):
    r = post(client, b'{"model": "mock-1", "input": "\\ud83d\\ude00"}')
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("field, raw, code", [
    ("temperature", b"1" + b"0" * 30, "integer_out_of_range"),
    ("max_output_tokens", str(2**63).encode(), "integer_out_of_range"),
    ("max_tool_calls", str(-(2**63) - 1).encode(), "integer_out_of_range"),
    ("top_p", b"1e400", "number_out_of_range"),
    ("temperature", b"-1e400", "number_out_of_range"),
])
def test_numbers_out_of_range_are_400(client, field, raw, code):
    envelope(post(client, b'{"model": "mock-1", "input": "hi", "' + field.encode() + b'": ' + raw + b"}"),
             400, code, field)


def test_a_thousand_digit_number_is_400(client):
    envelope(post(client, b'{"model": "mock-1", "input": "hi", "top_p": ' + b"9" * 5000 + b"}"),
             400, "invalid_json", None)


def test_large_integers_in_a_schema_stream_fine(client, stream):
    """Echoed in every streamed event (orjson): 64-bit integers must survive the trip."""
    tool = {"type": "function", "name": "f",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**62}}}}
    response, _, events = stream(client, {**OK, "tools": [tool], "metadata": {"k": "v"}})
    assert response.status_code == 200 and events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["tools"][0]["parameters"]["properties"]["n"]["maximum"] == 2**62


@pytest.mark.parametrize("body, code, param", [
    ({**OK, "tool_choice": {"type": "function", "name": ["f"]}}, "invalid_type", "tool_choice.name"),
    ({**OK, "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": {}}]}},
     "invalid_type", "tool_choice.tools[0].name"),
    ({**OK, "input": [{"type": ["message"], "role": "user", "content": "x"}]}, "invalid_type", "input[0].type"),
    ({**OK, "input": [{"type": {"a": 1}}]}, "invalid_type", "input[0].type"),
    ({**OK, "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c", "output": [{"text": "x"}]}]},
     "missing_required_parameter", "input[1].output[0].type"),
    ({**OK, "input": [{"role": "user", "content": [{"text": "x"}]}]},
     "missing_required_parameter", "input[0].content[0].type"),
    ({**OK, "max_tool_calls": -1}, "integer_below_min_value", "max_tool_calls"),
    ({**OK, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": [1]}}]},
     "invalid_json_schema", "tools[0].parameters.properties"),
    ({**OK, "tools": [{"type": "function", "name": "f", "parameters": {"properties": {"a": {"minLength": "x"}}}}]},
     "invalid_json_schema", "tools[0].parameters.properties.a.minLength"),
    ({**OK, "tools": [{"type": "function", "name": "f", "parameters": {"properties": {"+0": []}}}]},
     "invalid_json_schema", "tools[0].parameters.properties"),  # jsonschema_rs reports "+0" as 0
    ({**OK, "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "bogus"}}}},
     "invalid_json_schema", "text.format.schema.type"),
])
def test_field_errors_name_the_field(client, body, code, param):
    envelope(client.post("/responses", json=body), 400, code, param)


def test_an_unknown_item_type_is_not_echoed_in_full(client):
    error = envelope(client.post("/responses", json={**OK, "input": [{"type": "x" * 100_000}]}), 400,
                     "unsupported_parameter", "input[0].type")
    assert len(error["message"]) < 200


def test_a_schema_url_is_never_fetched(client):
    """``$schema`` and ``$ref`` URLs are data: the schema is checked against the built-in
    metaschema as an instance, so nothing is fetched (a non-routable address would hang)."""
    parameters = {"$schema": "http://10.255.255.1/schema.json", "type": "object",
                  "properties": {"a": {"type": "string"}}}
    start = time.monotonic()
    r = client.post("/responses", json={**OK, "tools": [{"type": "function", "name": "f", "parameters": parameters}]})
    assert r.status_code == 200, r.text
    assert time.monotonic() - start < 3.0


def test_a_declared_oversized_body_gets_its_413(client):
    """Over the default 1 MiB, sent whole: the client reads the 413, not a reset."""
    body = json.dumps({**OK, "input": "a" * (3 * 1024 * 1024)}).encode()
    envelope(post(client, body), 413, "request_too_large", None)
    test_still_serving(client)


def test_a_chunked_oversized_body_gets_its_413(make_gateway):
    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"model": "mock-1", "input": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    with make_gateway(max_body_bytes=16 * 1024) as c:
        r = c.post("/responses", content=chunks(), headers=JSON)
        envelope(r, 413, "request_too_large", None)
        assert "transfer-encoding" not in r.request.headers or r.request.headers["transfer-encoding"] == "chunked"
        assert c.post("/responses", json=OK).status_code == 200
