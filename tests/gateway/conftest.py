"""Servers for the gateway's tests: real uvicorn servers on 127.0.0.1, started by launch.py."""

from __future__ import annotations

import json

import httpx
import pytest

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
