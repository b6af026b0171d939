"""Non-streamed and streamed Response objects: shape, schema, grammar, equivalence."""

from __future__ import annotations

import re

import jsonschema
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

RESPONSE_SCHEMA = Response.model_json_schema()
EVENT_ADAPTER = TypeAdapter(ResponseStreamEvent)
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
CLOSING_EVENTS = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


def validate(obj: dict) -> None:
    Response.model_validate(obj)
    jsonschema.Draft202012Validator(RESPONSE_SCHEMA).validate(obj)


def assert_grammar(events: list[dict], terminal: str) -> str:
    """The exact event order for one text message; returns the concatenated deltas."""
    types = [e["type"] for e in events]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert types == TEXT_EVENTS + ["response.output_text.delta"] * len(deltas) + CLOSING_EVENTS + [terminal]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1
    created, in_progress = events[0]["response"], events[1]["response"]
    assert created["status"] == in_progress["status"] == "in_progress"
    assert created["output"] == []
    added, part_added = events[2], events[3]
    assert added["output_index"] == 0 and added["item"]["status"] == "in_progress" and added["item"]["content"] == []
    item_id = added["item"]["id"]
    assert part_added["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert (part_added["item_id"], part_added["output_index"], part_added["content_index"]) == (item_id, 0, 0)
    for delta in deltas:
        assert (delta["item_id"], delta["output_index"], delta["content_index"]) == (item_id, 0, 0)
        assert delta["logprobs"] == []
    text = "".join(d["delta"] for d in deltas)
    text_done, part_done, item_done, final = events[-4:]
    assert text_done["text"] == text
    assert part_done["part"]["text"] == text
    assert item_done["item"]["content"] == [part_done["part"]]
    assert final["response"]["output"] == [item_done["item"]]
    for event in events:
        EVENT_ADAPTER.validate_python(event)
    validate(final["response"])
    return text


def test_non_streamed_response_validates(client):
    r = client.post("/responses", json={"model": "mock-1", "input": "Say something.", "metadata": {"k": "v"}})
    assert r.status_code == 200, r.text
    body = r.json()
    validate(body)
    assert re.fullmatch(r"resp_[0-9a-f]{32,}", body["id"])
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["model"] == "mock-1" and body["metadata"] == {"k": "v"}
    assert isinstance(body["created_at"], int) and isinstance(body["completed_at"], int)
    (item,) = body["output"]
    assert re.fullmatch(r"msg_[0-9a-f]+", item["id"])
    assert item["status"] == "completed" and item["role"] == "assistant"
    assert len(item["content"][0]["text"].split()) == 24
    usage = body["usage"]
    assert usage["output_tokens"] == 24
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}


def test_stream_grammar_and_headers(stream, client):
    response, raw, events = stream(client, {"model": "mock-1", "input": "Say something."})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "[DONE]" not in raw
    text = assert_grammar(events, "response.completed")
    assert len(text.split()) == 24
    assert events[-1]["response"]["status"] == "completed"


def test_stream_and_non_stream_are_equivalent(stream, client):
    body = {"model": "mock-1", "input": "equivalence", "instructions": "x"}
    plain = client.post("/responses", json=body).json()
    _, _, events = stream(client, body)
    streamed = events[-1]["response"]
    for key in ("status", "incomplete_details", "instructions", "model", "usage", "temperature", "top_p", "text"):
        assert plain[key] == streamed[key], key
    assert plain["output"][0]["content"] == streamed["output"][0]["content"]


@pytest.mark.parametrize("streamed", [False, True])
def test_max_output_tokens_gives_incomplete(stream, client, streamed):
    body = {"model": "mock-1", "input": "long answer please", "max_output_tokens": 16}
    if streamed:
        _, _, events = stream(client, body)
        text = assert_grammar(events, "response.incomplete")
        final = events[-1]["response"]
        assert events[-2]["item"]["status"] == "incomplete"
        assert len(text.split()) == 16
    else:
        final = client.post("/responses", json=body).json()
        validate(final)
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    assert final["usage"]["output_tokens"] == 16
    assert final["max_output_tokens"] == 16


def test_empty_upstream_text_streams_validly(stream, client):
    _, _, events = stream(client, {"model": "mock-empty", "input": "hi"})
    assert assert_grammar(events, "response.completed") == ""
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""


def test_done_sentinel_follows_terminal_event(stream, make_gateway):
    with make_gateway(done_sentinel=True) as c:
        _, raw, events = stream(c, {"model": "mock-1", "input": "hi"})
    assert raw.count("[DONE]") == 1
    assert raw.rstrip("\n").split("\n\n")[-2].startswith("event: response.completed\n")
    assert raw.endswith("}\n\ndata: [DONE]\n\n")
    assert_grammar(events, "response.completed")


def test_upstream_failure_mid_stream(stream, client, validate):  # conftest's: a failed response's code
    _, _, events = stream(client, {"model": "mock-broken-stream", "input": "hi"})
    types = [e["type"] for e in events]
    assert types[-2:] == ["error", "response.failed"]
    assert "response.output_text.delta" in types
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    error = events[-2]["error"]  # nested, as OpenAI's service sends it
    assert set(error) == {"type", "code", "message", "param"} and error["message"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == error["code"] == "upstream_error"
    validate(failed)  # the failed response, as the SDK types it (conftest)
    for event in events[:-2]:
        EVENT_ADAPTER.validate_python(event)
