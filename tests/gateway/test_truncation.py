"""``truncation``: a context over the upstream's window is a 400 ``context_length_exceeded``
(``disabled``, the default), or is sent again without its oldest messages (``auto``);
upstream.py's module docstring. The mock upstream's ``mock-window:N`` model has an N-token window
(tokens: words) and refuses a longer prompt exactly as vLLM does."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from reference_gateway.errors import APIError
from reference_gateway.translate import drop_oldest
from reference_gateway.upstream import _raise_for_status

TIMEOUT_S = 5.0


def words(tag: str, n: int) -> str:
    return " ".join([tag] * n)


def sent_to_upstream(target, model: str) -> list[dict]:
    return [r for r in target.upstream.app.state.requests if r.get("model") == model]


def assert_context_envelope(r: httpx.Response) -> dict:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "context_length_exceeded",
                                                             "input")
    assert "maximum context length is" in error["message"]
    return error


def test_mock_refuses_a_long_prompt_as_vllm_does(target):
    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        r = c.post("/chat/completions", json={"model": "mock-window:10",
                                              "messages": [{"role": "user", "content": words("w", 11)}]})
        ok = c.post("/chat/completions", json={"model": "mock-window:10",
                                               "messages": [{"role": "user", "content": words("w", 10)}]})
        bad = c.post("/chat/completions", json={"model": "mock-window:0", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json() == {"error": {
        "message": "This model's maximum context length is 10 tokens. However, your prompt contains 11 input "
                   "tokens, which exceeds this limit even without any output tokens. Please reduce the length "
                   "of the input prompt.",
        "type": "BadRequestError", "param": "input_tokens", "code": 400}}
    assert ok.status_code == 200 and bad.status_code == 400 and bad.json()["error"]["param"] == "model"


def test_default_window_holds_for_every_model(target):
    from reference_gateway.mock_upstream import CONTEXT_WINDOW

    with httpx.Client(base_url=target.upstream.base_url, timeout=TIMEOUT_S) as c:
        r = c.post("/chat/completions", json={"model": "mock-1", "messages": [
            {"role": "user", "content": words("w", CONTEXT_WINDOW + 1)}]})
    assert r.status_code == 400 and f"is {CONTEXT_WINDOW} tokens" in r.json()["error"]["message"]


@pytest.mark.parametrize("truncation", [None, "disabled"])
@pytest.mark.parametrize("streamed", [False, True])
def test_disabled_refuses_with_context_length_exceeded(client, target, truncation, streamed):
    model = f"mock-window:{7 if streamed else 8}"
    body = {"model": model, "input": [{"role": "user", "content": words("old", 5)},
                                      {"role": "user", "content": words("new", 5)}]}
    if truncation:
        body["truncation"] = truncation
    before = len(sent_to_upstream(target, model))
    r = client.post("/responses", json={**body, "stream": streamed})
    assert_context_envelope(r)  # streamed too: refused before any event, as an envelope
    assert len(sent_to_upstream(target, model)) == before + 1  # disabled: never sent again, shorter


@pytest.mark.parametrize("streamed", [False, True])
def test_auto_drops_the_oldest_messages_until_it_fits(client, target, stream, check_events, validate, streamed):
    model = f"mock-window:{12 if streamed else 13}"
    body = {"model": model, "truncation": "auto", "instructions": "be very brief", "max_output_tokens": 16,
            "input": [{"role": "user", "content": words("first", 5)},
                      {"role": "assistant", "content": words("second", 5)},
                      {"role": "user", "content": words("third", 5)}]}
    before = len(sent_to_upstream(target, model))
    if streamed:
        r, _, events = stream(client, body)
        assert r.status_code == 200
        out = check_events(events)
    else:
        r = client.post("/responses", json=body)
        assert r.status_code == 200, r.text
        out = validate(r.json())
    assert out["status"] == "incomplete" and out["truncation"] == "auto"
    attempts = sent_to_upstream(target, model)[before:]
    # 18 words; without 1 message 13 (> 12), without 2 it fits; 13 fits at the first retry.
    assert [len(a["messages"]) for a in attempts] == ([4, 3, 2] if streamed else [4, 3])
    assert attempts[-1]["messages"][0] == {"role": "system", "content": "be very brief"}
    assert attempts[-1]["messages"][-1]["content"] == words("third", 5)
    listed = client.get(f"/responses/{out['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert len(listed) == 3  # what is stored is never truncated


def test_auto_refuses_when_the_last_message_alone_is_too_long(client, target):
    model = "mock-window:9"
    before = len(sent_to_upstream(target, model))
    r = client.post("/responses", json={"model": model, "truncation": "auto", "input": words("huge", 10)})
    assert_context_envelope(r)
    assert len(sent_to_upstream(target, model)) == before + 1  # nothing could be dropped: no retry


CALL = {"role": "assistant", "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "42"}
SYSTEM = {"role": "system", "content": "s"}


@pytest.mark.parametrize("count, kept", [
    (0, ["s", "u1", "call", "tool", "u2"]),
    (1, ["s", "call", "tool", "u2"]),
    (2, ["s", "u2"]),  # the cut moves past the tool result that answered the dropped call
    (3, ["s", "u2"]),
    (99, ["s", "u2"]),  # never the last message
])
def test_drop_oldest_keeps_system_and_last_and_pairs(count, kept):
    messages = [SYSTEM, {"role": "user", "content": "u1"}, CALL, RESULT, {"role": "user", "content": "u2"}]
    names = {id(SYSTEM): "s", id(CALL): "call", id(RESULT): "tool"}
    out = drop_oldest(messages, count)
    assert [names.get(id(m), m.get("content")) for m in out] == kept
    assert messages[1]["content"] == "u1" and len(messages) == 5  # not changed in place


def test_drop_oldest_never_leaves_a_tool_result_first():
    messages = [{"role": "user", "content": "u1"}, CALL, RESULT]
    assert drop_oldest(messages, 2) == [CALL, RESULT]  # back to the call the last result answers


@pytest.mark.parametrize("error", [
    {"message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
                "(4984 in the messages, 16 in the completion).", "type": "BadRequestError", "param": None,
     "code": 400},
    {"message": "Input too long", "type": "invalid_request_error", "param": "messages",
     "code": "context_length_exceeded"},
    {"message": "the request exceeds the available context size, try increasing it",
     "type": "exceed_context_size_error", "code": 400},
])
def test_upstream_context_wordings_map_to_one_envelope(error):
    response = httpx.Response(400, json={"error": error})
    with pytest.raises(APIError) as caught:
        asyncio.run(_raise_for_status(response, 1 << 20))
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "context_length_exceeded", "input")


def test_other_upstream_4xx_keep_their_envelope():
    response = httpx.Response(404, json={"error": {"message": "The model `x` does not exist.",
                                                   "type": "NotFoundError", "param": "model", "code": 404}})
    with pytest.raises(APIError) as caught:
        asyncio.run(_raise_for_status(response, 1 << 20))
    assert (caught.value.status, caught.value.code, caught.value.param) == (404, None, "model")


def test_auto_holds_for_background_responses_too(client, target):
    """The background runner passes the request's truncation to the upstream as well."""
    import time

    model = "mock-window:13"
    body = {"model": model, "truncation": "auto", "background": True, "max_output_tokens": 16,
            "input": [{"role": "user", "content": words("first", 5)},
                      {"role": "assistant", "content": words("second", 5)},
                      {"role": "user", "content": words("third", 5)}]}
    before = len(sent_to_upstream(target, model))
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    rid, deadline = r.json()["id"], time.monotonic() + TIMEOUT_S
    while (out := client.get(f"/responses/{rid}").json())["status"] in ("queued", "in_progress") \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out["status"] in ("completed", "incomplete"), out
    assert [len(a["messages"]) for a in sent_to_upstream(target, model)[before:]] == [3, 2]
