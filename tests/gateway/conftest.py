"""Servers for the gateway's tests: real uvicorn servers on 127.0.0.1, started by launch.py."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_embedded, start_gateway

CLIENT_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def target():
    with start_embedded() as embedded:
        yield embedded


@pytest.fixture
def client(target):
    with httpx.Client(base_url=target.base_url, timeout=CLIENT_TIMEOUT_S) as c:
        yield c


@pytest.fixture
def make_gateway(target):
    """Another gateway in front of the same mock upstream, with its own config fields."""
    started = []

    def make(**fields):
        server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url, **fields))
        started.append(server)
        return httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_S)

    yield make
    for server in started:
        server.close()


def _parse_sse(body: str) -> list[tuple[str | None, str]]:
    """(event name, data) per frame; deliberately simple and independent of harness/sse.py."""
    frames = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        frames.append((name, "\n".join(data)))
    return frames


def _stream(client: httpx.Client, body: dict) -> tuple[httpx.Response, str, list[dict]]:
    with client.stream("POST", "/responses", json={**body, "stream": True}) as response:
        text = response.read().decode()
    frames = _parse_sse(text)
    events = [json.loads(data) for name, data in frames if data != "[DONE]"]
    for (name, _), event in zip(frames, events):
        assert name == event["type"], f"event: line {name!r} disagrees with JSON type {event['type']!r}"
    return response, text, events


@pytest.fixture
def parse_sse():
    return _parse_sse


@pytest.fixture
def stream():
    """``stream(client, body) -> (response, raw body, events)`` for a streamed create."""
    return _stream


RESPONSE_SCHEMA = Response.model_json_schema()
EVENT_ADAPTER = TypeAdapter(ResponseStreamEvent)
DELTA_DONE = {  # delta event -> (done event, field of the done event)
    "response.output_text.delta": ("response.output_text.done", "text"),
    "response.reasoning_text.delta": ("response.reasoning_text.done", "text"),
    "response.function_call_arguments.delta": ("response.function_call_arguments.done", "arguments"),
}


def _validate_response(obj: dict) -> dict:
    Response.model_validate(obj)
    jsonschema.Draft202012Validator(RESPONSE_SCHEMA).validate(obj)
    return obj


def _check_events(events: list[dict]) -> dict:
    """Every event against the SDK's union, plus an independent grammar check: sequence numbers,
    one item open at a time, dense output_index, deltas accumulating to .done values and to the
    terminal response's items. Returns the terminal response."""
    for event in events:
        if event["type"] != "error":  # nested on the wire, flat in the SDK (README: the wire wins)
            EVENT_ADAPTER.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    terminal = events[-1]
    assert terminal["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert terminal["type"] == f"response.{terminal['response']['status']}"
    open_item, done_items, acc = None, [], ""
    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert open_item is None, "two items open at once"
            assert event["output_index"] == len(done_items)
            open_item, acc = event["item"], ""
            assert open_item["status"] == "in_progress"
        elif kind == "response.output_item.done":
            assert open_item is not None and event["item"]["id"] == open_item["id"]
            assert event["output_index"] == len(done_items)
            done_items.append(event["item"])
            open_item = None
        elif kind == "error":
            continue
        else:
            assert open_item is not None, f"{kind} outside an item"
            assert event["item_id"] == open_item["id"] and event["output_index"] == len(done_items)
            if kind in DELTA_DONE:
                acc += event["delta"]
            for done, key in DELTA_DONE.values():
                if kind == done:
                    assert event[key] == acc
    final = terminal["response"]
    if terminal["type"] != "response.failed":
        assert open_item is None
        assert final["output"] == done_items
    _validate_response(final)
    return final


@pytest.fixture
def validate():
    """``validate(response_object)``: the SDK's pydantic model and its JSON schema."""
    return _validate_response


@pytest.fixture
def check_events():
    """``check_events(events) -> terminal response`` (see ``_check_events``)."""
    return _check_events
