"""The embedded deterministic chat-completions server (the reference target's "model").

Output is words from a fixed vocabulary, drawn by a PRNG seeded with a hash of the request's
messages: the same messages always give the same answer. One token is one word chunk
(``"lorem"``, ``" ipsum"``, ...). ``max_tokens`` / ``max_completion_tokens`` cut the answer
with ``finish_reason: "length"``; otherwise it is ``DEFAULT_TOKENS`` long and ends with ``stop``.

Model-name directives (anything else behaves like ``mock-1``):
    mock-empty          an empty answer
    mock-error          HTTP 500 with an error envelope
    mock-broken-stream  streams a few chunks, then drops the connection
    mock-slow           waits ``SLOW_DELAY_S`` before answering

The last requests received are kept in ``app.state.requests`` so tests can see what the
gateway sent.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "mock-1"
DEFAULT_TOKENS = 24
SLOW_DELAY_S = 1.0
BROKEN_STREAM_TOKENS = 3
RECORDED_REQUESTS = 32
VOCABULARY = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud"
).split()


def _error(status: int, message: str, *, param: str | None = None, type: str = "invalid_request_error") -> Response:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": None}}, status_code=status)


def tokens(messages: list, limit: int) -> list[str]:
    seed = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    rng = random.Random(seed)
    words = [rng.choice(VOCABULARY) for _ in range(limit)]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def prompt_tokens(messages: list) -> int:
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str):
            words += len(content.split())
    return max(words, 1)


def create_app() -> Starlette:
    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        request.app.state.requests.append(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array.", param="messages")
        model = body.get("model") if isinstance(body.get("model"), str) else MODEL
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            return _error(400, "'max_tokens' must be a positive integer.", param="max_tokens")

        if model == "mock-error":
            return _error(500, "The mock upstream failed on purpose.", type="server_error")
        if model == "mock-slow":
            await asyncio.sleep(SLOW_DELAY_S)
        answer = [] if model == "mock-empty" else tokens(messages, DEFAULT_TOKENS)
        finish_reason = "stop"
        if limit is not None and limit < len(answer):
            answer, finish_reason = answer[:limit], "length"
        usage = {
            "prompt_tokens": prompt_tokens(messages),
            "completion_tokens": len(answer),
            "total_tokens": prompt_tokens(messages) + len(answer),
        }
        completion_id = "chatcmpl-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
        created = int(time.time())
        base = {"id": completion_id, "created": created, "model": model, "system_fingerprint": None}

        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(answer)}
            choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def chunks() -> AsyncIterator[bytes]:
            def frame(choices: list, **extra) -> bytes:
                chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
                return f"data: {json.dumps(chunk)}\n\n".encode()

            yield frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for i, token in enumerate(answer):
                if model == "mock-broken-stream" and i == BROKEN_STREAM_TOKENS:
                    raise ConnectionAbortedError("mock-broken-stream: dropping the connection on purpose")
                yield frame([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
            yield frame([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
            if include_usage:
                yield frame([], usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def models(request: Request) -> Response:
        data = [{"id": MODEL, "object": "model", "created": 0, "owned_by": "reference-gateway"}]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.requests = collections.deque(maxlen=RECORDED_REQUESTS)
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m reference_gateway.mock_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
