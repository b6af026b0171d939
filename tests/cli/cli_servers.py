"""Misbehaving Responses API servers for the CLI and plugin tests, served on 127.0.0.1.

Each builder returns a Starlette app; serve it with ``reference_gateway.launch.RunningServer``.
The bodies are derived from what the embedded reference gateway really sends, with one planted
defect each, so a test can say exactly which check must fail.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reference_gateway.launch import RunningServer, start_embedded

CLIENT_TIMEOUT_S = 5.0
# How long a stalling handler waits at most before giving up on its own (a safety net: the
# test's teardown releases it much sooner).
STALL_CAP_S = 30.0
# Clean 4xx envelope, exactly the four keys OpenAI's service sends.
REFUSAL = {"error": {"message": "This server does not support that feature.",
                     "type": "invalid_request_error", "param": None, "code": "unsupported"}}


class Recorded:
    """Bodies the reference gateway produced for one streamed and one non-streamed request."""

    def __init__(self, stream: bytes, response: dict, error: dict) -> None:
        self.stream = stream
        self.response = response
        self.error = error


def record_gateway_bodies() -> Recorded:
    request = {"model": "mock-1", "input": "Say hello.", "max_output_tokens": 32}
    with start_embedded() as embedded, httpx.Client(timeout=CLIENT_TIMEOUT_S,
                                                     trust_env=False) as client:
        url = embedded.base_url + "/responses"
        stream = client.post(url, json={**request, "stream": True})
        assert stream.status_code == 200, stream.text
        assert stream.headers["content-type"].startswith("text/event-stream")
        plain = client.post(url, json=request)
        assert plain.status_code == 200, plain.text
        err = client.post(url, json={"model": "mock-1"})
        assert err.status_code == 400, err.text
        return Recorded(stream.content, plain.json(), err.json())


_SEQ = re.compile(rb'"sequence_number":\s*(\d+)')


def skip_sequence_number(stream: bytes, *, after: int = 2) -> bytes:
    """The same stream with every sequence_number above ``after`` raised by one (one is skipped)."""
    def bump(m: re.Match) -> bytes:
        n = int(m.group(1))
        return b'"sequence_number":%d' % (n + 1 if n > after else n)
    return _SEQ.sub(bump, stream)


def _models(model: str):
    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": model, "object": "model"}]})
    return Route("/v1/models", models)


async def _json_body(request: Request):
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def broken_app(recorded: Recorded) -> Starlette:
    """A server that gets three MUST things wrong:

    * streamed answers skip a sequence_number (after 2, the next is 4);
    * non-streamed Response objects lack ``object``;
    * invalid requests are answered 200 (the broken Response object) instead of 400.
    """
    stream = skip_sequence_number(recorded.stream)
    response = {k: v for k, v in recorded.response.items() if k != "object"}

    async def responses(request: Request) -> Response:
        body = await _json_body(request)
        if body is not None and body.get("stream") is True and "input" in body:
            return Response(stream, media_type="text/event-stream")
        return JSONResponse(response)  # also for bad requests: 200, not 400

    return Starlette(routes=[_models("bad"), Route("/v1/responses", responses, methods=["POST"])])


class Stall:
    """A server that stalls: ``after_headers`` sends 200 headers then never a body byte;
    ``before_headers`` never answers at all. ``release()`` ends every stalled handler."""

    def __init__(self, mode: str) -> None:
        assert mode in ("after_headers", "before_headers")
        self.mode = mode
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def _wait(self) -> None:
        deadline = time.monotonic() + STALL_CAP_S
        while not self._released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def app(self) -> Starlette:
        async def responses(request: Request) -> Response:
            await request.body()
            if self.mode == "before_headers":
                await self._wait()
                return JSONResponse(REFUSAL, status_code=503)

            async def never():
                await self._wait()
                yield b""

            return StreamingResponse(never(), media_type="text/event-stream")

        return Starlette(routes=[_models("stall"),
                                 Route("/v1/responses", responses, methods=["POST"])])


def refusing_app() -> Starlette:
    """Refuses every request with a clean 400 error envelope."""
    async def responses(request: Request) -> Response:
        await request.body()
        return JSONResponse(REFUSAL, status_code=400)

    return Starlette(routes=[_models("refuser"), Route("/v1/responses", responses, methods=["POST"])])


def serve(app, name: str) -> RunningServer:
    return RunningServer(app, name=name)


def write_scenarios(root: Path, scenarios: dict[str, str]) -> Path:
    """Write ``{"feature/name": yaml_text}`` under root; return root."""
    for sid, text in scenarios.items():
        path = root / f"{sid}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def read_summary(report_dir: Path) -> dict:
    return json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
