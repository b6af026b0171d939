"""The embedded deterministic chat-completions upstream."""

from __future__ import annotations

import json

import httpx

TIMEOUT_S = 5.0
MESSAGES = [{"role": "user", "content": "hello there"}]


def chat(target, **body):
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        return c.post("/chat/completions", json={"model": "mock-1", "messages": MESSAGES, **body})


def test_deterministic_default_length(target):
    a, b = chat(target).json(), chat(target).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert len(a["choices"][0]["message"]["content"].split()) == 24
    assert a["choices"][0]["finish_reason"] == "stop"
    assert a["usage"] == {"prompt_tokens": 2, "completion_tokens": 24, "total_tokens": 26}


def test_honours_max_tokens(target):
    for field in ("max_tokens", "max_completion_tokens"):
        body = chat(target, **{field: 5}).json()
        assert len(body["choices"][0]["message"]["content"].split()) == 5
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 5


def test_stream_chunks_usage_and_done(target, parse_sse):
    r = chat(target, stream=True, stream_options={"include_usage": True}, max_tokens=7)
    frames = [data for _, data in parse_sse(r.text)]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(d) for d in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert len(text.split()) == 7
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7
    assert text == chat(target, max_tokens=7).json()["choices"][0]["message"]["content"]


def test_rejects_bad_input(target):
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        r = c.post("/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "message" in r.json()["error"]
        r = c.post("/chat/completions", json={"model": "mock-1"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
        assert c.get("/models").json()["data"][0]["id"] == "mock-1"
        assert c.get(f"{target.upstream.origin}/health").status_code == 200


SCHEMAS = [
    {"type": "object", "properties": {"s": {"type": "string", "minLength": 9, "maxLength": 12},
                                      "n": {"type": "number", "exclusiveMinimum": 2, "maximum": 9},
                                      "i": {"type": "integer", "minimum": 3, "multipleOf": 2},
                                      "b": {"type": "boolean"}, "z": {"type": "null"},
                                      "e": {"enum": ["x", "y"]}, "c": {"const": 7},
                                      "d": {"type": "string", "format": "date-time"},
                                      "arr": {"type": "array", "items": {"type": "integer"}, "minItems": 3},
                                      "o": {"$ref": "#/$defs/node"}, "u": {"type": ["null", "string"]}},
     "required": ["s", "n", "i"], "additionalProperties": False,
     "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]}}},
    {"type": "array", "items": {"anyOf": [{"type": "object", "properties": {"k": {"type": "string"}}}]}},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
               {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
]


def test_schema_examples_are_valid():
    import jsonschema

    from reference_gateway.schema_example import example

    for schema in SCHEMAS:
        jsonschema.validate(example(schema), schema)


def test_tool_call_rule_and_streamed_chunks(target, parse_sse):
    tools = [{"type": "function", "function": {"name": n, "parameters": SCHEMAS[0]}} for n in ("f", "g")]
    body = chat(target, tools=tools, tool_choice="required").json()
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["f", "g"] and calls[0]["id"] != calls[1]["id"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert len(chat(target, tools=tools, tool_choice="required", parallel_tool_calls=False).json()
               ["choices"][0]["message"]["tool_calls"]) == 1
    assert "tool_calls" not in chat(target, tools=tools).json()["choices"][0]["message"]  # auto, no trigger word
    r = chat(target, tools=tools, tool_choice={"type": "function", "function": {"name": "g"}}, stream=True)
    chunks = [json.loads(d) for _, d in parse_sse(r.text) if d != "[DONE]"]
    pieces = [tc["function"]["arguments"] for c in chunks if c["choices"]
              for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert len(pieces) > 3 and json.loads("".join(pieces))
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        after_tool = c.post("/chat/completions", json={"model": "mock-1", "tools": tools, "tool_choice": "required",
                                                       "messages": MESSAGES + [{"role": "tool", "tool_call_id": "x",
                                                                                "content": "1"}]}).json()
    assert after_tool["choices"][0]["finish_reason"] == "stop"
