"""The embedded deterministic chat-completions upstream."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from reference_gateway.mock_upstream import FAULT_TOKENS

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
    # "hello there" makes no tool relevant: required calls the first offered, once
    assert [c["function"]["name"] for c in calls] == ["f"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert "tool_calls" not in chat(target, tools=tools).json()["choices"][0]["message"]  # auto, nothing relevant
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


# -- fault modes (mock-fault:MODE[:ARG]) and the record of streams ------------------------------

def _fault(target, model, *, stream, read=True):
    """(status, body bytes or the exception raised, seconds) of one call to the mock."""
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    started = time.monotonic()
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        try:
            r = c.post("/chat/completions", json=body)
            return r.status_code, r.content, time.monotonic() - started
        except httpx.HTTPError as exc:
            return None, exc, time.monotonic() - started


def _data(content: bytes) -> list[str]:
    return [line[6:] for line in content.decode().split("\n") if line.startswith("data: ")]


def _last_stream(target, model):
    return [s for s in target.upstream.app.state.streams if s["model"] == model][-1]


def test_fault_modes_streamed(target):
    normal = [json.loads(d) for d in _data(chat(target, stream=True).content)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in normal)

    status, body, took = _fault(target, "mock-fault:stall-first:0.3", stream=True)
    assert status == 200 and took >= 0.3 and _data(body)[-1] == "[DONE]"
    status, body, took = _fault(target, "mock-fault:stall-mid:0.3", stream=True)
    assert status == 200 and took >= 0.3 and _data(body)[-1] == "[DONE]"

    status, body, _ = _fault(target, "mock-fault:bad-json", stream=True)
    frames = _data(body)
    with pytest.raises(ValueError):
        json.loads(frames[1 + FAULT_TOKENS])
    assert all(json.loads(f) for f in frames[: 1 + FAULT_TOKENS])

    status, body, _ = _fault(target, "mock-fault:truncated", stream=True)
    frames = _data(body)
    assert status == 200 and len(frames) == 1 + FAULT_TOKENS and "[DONE]" not in frames
    assert all(json.loads(f)["choices"][0]["finish_reason"] is None for f in frames)
    assert _last_stream(target, "mock-fault:truncated")["outcome"] == "fault"

    status, body, _ = _fault(target, "mock-fault:oversized:5000", stream=True)
    chunks = [json.loads(d) for d in _data(body)[:-1]]
    assert len(chunks[1]["choices"][0]["delta"]["content"]) == 5000 and len(chunks) == len(normal) + 1

    status, body, took = _fault(target, "mock-fault:drip:0", stream=True)
    drip = [json.loads(d) for d in _data(body)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in drip) == text
    assert _last_stream(target, "mock-fault:drip:0")["outcome"] == "finished"

    status, error, _ = _fault(target, "mock-fault:reset", stream=True)
    assert status is None and isinstance(error, httpx.ReadError) and "reset" in str(error).lower()
    assert _last_stream(target, "mock-fault:reset")["outcome"] == "fault"


def test_drip_writes_one_byte_at_a_time(target):
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        body = {"model": "mock-fault:drip:0.01", "messages": MESSAGES, "stream": True}
        with c.stream("POST", "/chat/completions", json=body) as r:
            raw = r.iter_raw()
            sizes = [len(piece) for _, piece in zip(range(20), raw)]
            raw.close()
    # A late read may catch a few writes at once; most catch one, none a whole ~300-byte frame.
    assert sorted(sizes)[len(sizes) // 2] == 1 and max(sizes) < 100


def test_fault_modes_non_streamed(target):
    normal = chat(target).content
    status, body, took = _fault(target, "mock-fault:stall-first:0.3", stream=False)
    assert status == 200 and took >= 0.3 and json.loads(body)["choices"]
    status, body, took = _fault(target, "mock-fault:stall-mid:0.3", stream=False)
    assert status == 200 and took >= 0.3 and json.loads(body)["choices"]
    for mode in ("bad-json", "truncated"):
        status, body, _ = _fault(target, f"mock-fault:{mode}", stream=False)
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(body)
    status, body, _ = _fault(target, "mock-fault:truncated", stream=False)
    assert 0 < len(body) < len(normal) // 2 + 50
    status, body, _ = _fault(target, "mock-fault:oversized:5000", stream=False)
    assert len(json.loads(body)["choices"][0]["message"]["content"]) == 5000
    status, body, _ = _fault(target, "mock-fault:drip:0", stream=False)
    assert json.loads(body)["choices"][0]["message"] == json.loads(normal)["choices"][0]["message"]
    status, error, _ = _fault(target, "mock-fault:reset", stream=False)
    assert status is None and isinstance(error, httpx.ReadError)


@pytest.mark.parametrize("stream", [False, True])
def test_fault_5xx(target, stream):
    status, body, _ = _fault(target, "mock-fault:5xx", stream=stream)
    assert status == 503 and json.loads(body)["error"]["type"] == "server_error"


@pytest.mark.parametrize("model", ["mock-fault:nope", "mock-fault:stall-mid:soon", "mock-fault:drip:-1"])
def test_fault_bad_names_are_400(target, model):
    status, body, _ = _fault(target, model, stream=True)
    assert status == 400 and json.loads(body)["error"]["param"] == "model"


def test_streams_are_recorded_and_a_cancel_is_seen(target):
    before = time.monotonic()
    chat(target, stream=True, max_tokens=3)
    record = target.upstream.app.state.streams[-1]
    assert record["model"] == "mock-1" and record["stream"] and record["outcome"] == "finished"
    assert before <= record["started"] <= record["ended"] <= time.monotonic()

    model = "mock-fault:stall-mid:20"
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        with c.stream("POST", "/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True}) as r:
            raw = r.iter_raw()
            next(raw)
            record = _last_stream(target, model)
            assert record["ended"] is None and record["outcome"] is None
            closed = time.monotonic()
            raw.close()  # closes the connection mid-stream
    for _ in range(200):
        if record["ended"] is not None:
            break
        time.sleep(0.01)
    assert record["outcome"] == "cancelled" and 0 <= record["ended"] - closed < 1.0
