"""The embedded deterministic chat-completions server (the reference target's "model").

Plain text (5. below) is words from a fixed vocabulary, drawn by a PRNG seeded with a hash of the
request's messages: the same messages always give the same answer, and every other kind of
answer is as deterministic, streamed or not. One token is one word chunk
(``"lorem"``, ``" ipsum"``, ...). ``max_tokens`` / ``max_completion_tokens`` cut the answer
with ``finish_reason: "length"``; otherwise it is ``DEFAULT_TOKENS`` long and ends with ``stop``.

What the request asks for decides the kind of answer, in this order:

1. Tool calls, as a tool-using model makes them (mock_tool_use.py): with function ``tools``
   offered and ``tool_choice`` auto (or absent) or required, a last user message gets a call of
   the tool most relevant to its words (several when ``parallel_tool_calls`` allows and several
   are relevant; under ``required`` always at least one), ``tool_choice`` naming a function gets
   that one, ``"none"`` gets text. Arguments are JSON valid against the tool's ``parameters``
   schema, with values drawn from the prompt where a property asks for them ("location" <-
   "San Francisco"; mock_arguments.py). Ids are ``call_`` + 24 hex digits, distinct and
   deterministic. Streamed, each call's arguments come in ``TOOL_ARGUMENT_CHUNK``-character
   chunks after a first chunk with its id and name; ``finish_reason`` is ``tool_calls``. Each
   chunk counts as a token.
2. Structured output, when ``response_format`` is ``json_schema`` (JSON generated from the
   schema) or ``json_object`` (``{"answer": "<words>"}``), in ``JSON_CHUNK``-character tokens.
3. After tool results (the last message is a ``tool`` message): text that quotes each output
   under its function's name (mock_tool_use.after_tools), one word a token.
4. About images and files, when the last message is a user message with ``image_url`` or
   ``file`` content parts: one sentence each, from their bytes (format, pixel size and byte
   size of a data-URL image, the URL of any other, a file's name, size and first line;
   mock_attachments.py), one word a token. Nothing is fetched.
5. Text, as above.

``POST /tokenize`` (vLLM's route, outside ``/v1``) counts chat ``messages`` as
``usage.prompt_tokens`` counts them.

Model-name directives (anything else behaves like ``mock-1``):
    mock-empty          an empty answer
    mock-error          HTTP 500 with an error envelope
    mock-broken-stream  streams a few chunks, then drops the connection
    mock-slow           waits ``SLOW_DELAY_S`` before answering
    mock-reasoning      first ``REASONING_TOKENS`` tokens of ``reasoning_content`` (vLLM's field),
                        then the answer; they count in ``completion_tokens_details.reasoning_tokens``
    mock-echo           answers with the compact JSON of the messages it received,
                        ``[{"role": ..., "content": ...}, ...]`` (tool calls as
                        ``"tool_calls": [name, ...]``), so a client can see the context it built
    mock-paced          a model with a fixed pace, for load tests that measure what sits in front
                        of it: the first content token ``PACED_TTFT_MS`` after the request, then
                        one every ``PACED_ITL_MS`` (an absolute schedule, so a late wake-up does
                        not shift the rest); ``mock-paced:TTFT_MS:ITL_MS`` sets both (e.g.
                        ``mock-paced:0:5``). Non-streamed, it answers after the whole schedule.
                        It writes exactly ``max_tokens`` tokens when given (``finish_reason:
                        length``, as a random-weight model does), else ``DEFAULT_TOKENS``.
    mock-call:NAME      a model that ignores what it was offered: it calls the function NAME
                        (arguments ``{}``) whatever ``tools`` and ``tool_choice`` say, unless the
                        last message is a tool result; for testing that what sits in front of it
                        enforces ``allowed_tools`` (the gateway sends only the allowed tools)
    mock-window:N       ``mock-1`` with a context window of N tokens instead of ``CONTEXT_WINDOW``
    mock-text-only      ``mock-1`` without vision: media content parts (``image_url``, ...) and
                        ``file`` parts are refused exactly as vLLM refuses them for a text-only
                        model (HTTP 400, "mock-text-only is not a multimodal model";
                        mock_attachments.py), so the error mapping in front of it can be tested

Context window: a request whose messages hold more than ``CONTEXT_WINDOW`` tokens (counted as
``usage.prompt_tokens`` counts them: the words of the messages' text) is refused exactly as vLLM
refuses it: HTTP 400, ``{"error": {"message": "This model's maximum context length is N tokens.
However, your prompt contains M input tokens, ...", "type": "BadRequestError", "param":
"input_tokens", "code": 400}}`` (vllm/renderers/params.py, vLLM 0.32).

Fault modes, for testing what sits in front of the mock (``mock-fault:MODE[:ARG]``; the answer
is otherwise ``mock-1``'s). ``FAULT_TOKENS`` is the number of content tokens sent before a
mid-stream fault; streamed (``stream: true``) and non-streamed answers both fail:

    mock-fault:stall-first[:S]  streamed: headers, then nothing for S seconds (``FAULT_STALL_S``)
                                before the first chunk; non-streamed: S seconds before the answer
    mock-fault:stall-mid[:S]    streamed: the role chunk and ``FAULT_TOKENS`` tokens, then S seconds
                                of silence; non-streamed: half the JSON body, then S seconds
    mock-fault:reset            as stall-mid, but the connection is reset (TCP RST: SO_LINGER 0,
                                then abort) instead of stalling
    mock-fault:5xx              HTTP 503 with an error envelope, before anything is streamed
    mock-fault:bad-json         streamed: a ``data:`` line that is not JSON after ``FAULT_TOKENS``
                                tokens; non-streamed: a 200 ``application/json`` body that is not JSON
    mock-fault:truncated        streamed: the body ends cleanly after ``FAULT_TOKENS`` tokens, with no
                                ``finish_reason`` and no ``[DONE]``; non-streamed: the first half of
                                the JSON answer, with a Content-Length that matches it
    mock-fault:drip[:S]         the whole (normal) body, one byte per write, S seconds apart
                                (``DRIP_INTERVAL_S``): it never idles, and takes minutes
    mock-fault:oversized[:N]    streamed: after the role chunk, one chunk whose content is N bytes
                                (``OVERSIZED_BYTES``), then the rest; non-streamed: an answer of
                                N bytes. The default is beyond the gateway's default caps.
    mock-fault:stall-headers[:S] no status line for S seconds (``FAULT_STALL_S``), streamed or not,
                                then ``mock-1``'s answer; recorded in ``app.state.streams`` from
                                the request on, so a test sees a client that left before any
                                answer began (outcome ``"cancelled"``)
    mock-fault:no-finish        the whole answer, but no ``finish_reason``: streamed, no finish
                                chunk (the body still ends with ``[DONE]``); non-streamed,
                                ``"finish_reason": null``
    mock-fault:429[:S]          HTTP 429 ``rate_limit_exceeded`` as OpenAI sends it, with
                                ``retry-after: S`` (``RETRY_AFTER_S``), ``retry-after-ms`` and the
                                ``x-ratelimit-*`` headers of ``RATE_LIMIT_HEADERS``

A stall ends early when the client goes away (the stream is cancelled). Refusing connections is
not a mode: point the client at a closed port.

The last requests received are kept in ``app.state.requests`` so tests can see what the
gateway sent. Every streamed body (``text/event-stream``, and the non-streamed fault bodies that
are written in pieces) is recorded in ``app.state.streams`` as a dict: ``model``, ``stream``
(bool), ``started`` and ``ended`` (``time.monotonic()`` values; ``ended`` is None while it runs)
and ``outcome``: ``"finished"`` (all of it was sent), ``"fault"`` (the mode ended it: reset,
truncated) or ``"cancelled"`` (the client went away first; the server cancelled the body). A
test watches it to see when the gateway dropped its upstream request.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import random
import re
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reference_gateway.mock_attachments import (
    TEXT_ONLY_MODEL,
    attachments,
    describe,
    text_only_refusal,
)
from reference_gateway.mock_tool_use import after_tools, call_arguments, chosen_tools
from reference_gateway.schema_example import example

MODEL = "mock-1"
DEFAULT_TOKENS = 24
SLOW_DELAY_S = 1.0
BROKEN_STREAM_TOKENS = 3
RECORDED_REQUESTS = 64
REASONING_TOKENS = 8
TOOL_ARGUMENT_CHUNK = 7
JSON_CHUNK = 6
PACED_MODEL = "mock-paced"
PACED_TTFT_MS = 50.0
PACED_ITL_MS = 10.0
FAULT_PREFIX = "mock-fault:"
FAULT_MODES = ("stall-first", "stall-mid", "reset", "5xx", "bad-json", "truncated", "drip", "oversized",
               "stall-headers", "no-finish", "429")
RETRY_AFTER_S = 1.0
# The rate-limit headers OpenAI's API sends (platform.openai.com/docs/guides/rate-limits), with
# the values of an exhausted request budget.
RATE_LIMIT_HEADERS = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
                      "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "150000",
                      "x-ratelimit-remaining-tokens": "149984", "x-ratelimit-reset-tokens": "6ms"}
FAULT_TOKENS = 3
FAULT_STALL_S = 30.0
DRIP_INTERVAL_S = 0.01
# 32 MiB: beyond the gateway's default caps on one streamed line (1 MiB) and on a whole
# non-streamed answer (16 MiB), see reference_gateway/config.py.
OVERSIZED_BYTES = 32 * 1024 * 1024
RECORDED_STREAMS = 256
CALL_PREFIX = "mock-call:"
WINDOW_PREFIX = "mock-window:"
# The mock's context window, in its tokens (words): vLLM's own default for a small model is its
# max_position_embeddings; 32k is a common one (Llama 2 long, Mistral 7B), and far beyond every
# request of the suite but the oversized-input scenario (suites/scenarios/errors/).
CONTEXT_WINDOW = 32768
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


def words(text: str) -> list[str]:
    """``text`` as word tokens, each with the whitespace before it: they join back into ``text``."""
    return re.findall(r"\s*\S+", text)


def _chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def pace(model: str) -> tuple[float, float] | None:
    """``(ttft_s, itl_s)`` for a ``mock-paced[:TTFT_MS:ITL_MS]`` model name, else None."""
    if model != PACED_MODEL and not model.startswith(PACED_MODEL + ":"):
        return None
    ttft_ms, itl_ms = PACED_TTFT_MS, PACED_ITL_MS
    parts = model.split(":")[1:]
    try:
        if parts:
            ttft_ms = float(parts[0])
        if len(parts) > 1:
            itl_ms = float(parts[1])
    except ValueError:
        return None
    return max(ttft_ms, 0.0) / 1000.0, max(itl_ms, 0.0) / 1000.0


def fault(model: str) -> tuple[str, float | None] | None:
    """``(mode, argument or None)`` for a ``mock-fault:MODE[:ARG]`` model name, else None.

    Raises ValueError for an unknown mode or an argument that is not a non-negative number.
    """
    if not model.startswith(FAULT_PREFIX):
        return None
    mode, _, arg = model[len(FAULT_PREFIX):].partition(":")
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(FAULT_MODES)}")
    if not arg:
        return mode, None
    try:
        value = float(arg)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"the argument of {model!r} must be a non-negative number")
    return mode, value


def context_window(model: str) -> int:
    """The window of ``model``: N for ``mock-window:N`` (a positive integer), else ``CONTEXT_WINDOW``.
    Raises ValueError for a ``mock-window:`` name without a positive integer."""
    if not model.startswith(WINDOW_PREFIX):
        return CONTEXT_WINDOW
    arg = model[len(WINDOW_PREFIX):]
    if not arg.isdigit() or int(arg) < 1:
        raise ValueError(f"the argument of {model!r} must be a positive integer")
    return int(arg)


def context_exceeded(window: int, prompt: int) -> Response:
    """vLLM's answer to a prompt longer than its window (module docstring), word for word."""
    message = (f"This model's maximum context length is {window} tokens. However, your prompt contains "
               f"{prompt} input tokens, which exceeds this limit even without any output tokens. "
               "Please reduce the length of the input prompt.")
    return JSONResponse({"error": {"message": message, "type": "BadRequestError", "param": "input_tokens",
                                   "code": 400}}, status_code=400)


def _reset(transport) -> bool:
    """Reset the TCP connection (RST, not FIN): SO_LINGER with a zero timeout, then abort."""
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


def _echo(messages: list) -> str:
    echoed = []
    for message in messages:
        entry = {"role": message.get("role"), "content": message.get("content")}
        if message.get("tool_calls"):
            entry["tool_calls"] = [(c.get("function") or {}).get("name") for c in message["tool_calls"]]
        echoed.append(entry)
    return _compact(echoed)


class _MockApp(Starlette):
    """Starlette, plus the connection's transport in ``scope["mock.transport"]`` (for the reset
    fault). uvicorn's ``send`` is a bound method of its request cycle, which holds the transport;
    under another server the key is None and ``mock-fault:reset`` raises instead (the server then
    drops the connection)."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope["mock.transport"] = getattr(getattr(send, "__self__", None), "transport", None)
        await super().__call__(scope, receive, send)


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
        refused = text_only_refusal(model, messages) if model == TEXT_ONLY_MODEL else None
        if refused is not None:
            return JSONResponse(refused[1], status_code=refused[0])
        try:
            faulty = fault(model)
        except ValueError as exc:
            return _error(400, str(exc), param="model")
        try:
            window = context_window(model)
        except ValueError as exc:
            return _error(400, str(exc), param="model")
        if prompt_tokens(messages) > window:
            return context_exceeded(window, prompt_tokens(messages))
        if faulty is not None and faulty[0] == "5xx":
            return _error(503, "The mock upstream is unavailable on purpose (mock-fault:5xx).", type="server_error")
        if faulty is not None and faulty[0] == "429":
            return rate_limited(RETRY_AFTER_S if faulty[1] is None else faulty[1])
        if faulty is not None and faulty[0] == "stall-headers":
            await held(request, model, stream=bool(body.get("stream")),
                       seconds=FAULT_STALL_S if faulty[1] is None else faulty[1])
            faulty = None
        if model == "mock-slow":
            await asyncio.sleep(SLOW_DELAY_S)
        paced = pace(model)
        loop = asyncio.get_running_loop()
        t_received = loop.time()
        # Ids from the request, less how it is delivered: streamed and not, the same ids.
        asked = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        digest = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
        reasoning = tokens(["reasoning", *messages], REASONING_TOKENS) if model == "mock-reasoning" else []

        # calls: [(id, name, [argument chunks])]; answer: content tokens.
        calls = []
        for i, (tool, anchor) in enumerate(chosen_tools(body)):
            arguments = _compact(call_arguments(tool, anchor, messages))
            call_id = "call_" + hashlib.sha256(f"{digest}:{i}".encode()).hexdigest()[:24]
            calls.append((call_id, tool["name"], _chunks(arguments, TOOL_ARGUMENT_CHUNK)))
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        if model.startswith(CALL_PREFIX) and last.get("role") != "tool":
            call_id = "call_" + hashlib.sha256(f"{digest}:misbehaving".encode()).hexdigest()[:24]
            calls = [(call_id, model[len(CALL_PREFIX):], ["{}"])]
        response_format = body.get("response_format") if isinstance(body.get("response_format"), dict) else {}
        if calls or model == "mock-empty":
            answer = []
        elif model == "mock-echo":
            answer = _chunks(_echo(messages), JSON_CHUNK)
        elif response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            answer = _chunks(_compact(example(schema)), JSON_CHUNK)
        elif response_format.get("type") == "json_object":
            answer = _chunks(_compact({"answer": "".join(tokens(messages, 4))}), JSON_CHUNK)
        elif paced is not None and limit is not None:
            answer = tokens(messages, limit)  # like a random-weight model: never stops early
        elif after_tools(messages) is not None:
            answer = words(after_tools(messages))
        elif attachments(messages):
            answer = words(describe(attachments(messages)))
        else:
            answer = tokens(messages, DEFAULT_TOKENS)
        finish_reason = "tool_calls" if calls else "stop"
        if paced is not None and limit is not None and not calls and len(answer) == limit:
            finish_reason = "length"
        produced = len(answer) + sum(len(chunks) + 1 for _, _, chunks in calls)
        if limit is not None and limit < produced:
            finish_reason = "length"
            if calls:  # cut the argument chunks, call by call
                budget, cut = limit, []
                for call_id, name, chunks in calls:
                    if budget <= 0:
                        break
                    cut.append((call_id, name, chunks[: budget - 1]))
                    budget -= len(chunks) + 1
                calls = cut
            answer = answer[:limit]
            produced = limit
        usage = {
            "prompt_tokens": prompt_tokens(messages),
            "completion_tokens": produced + len(reasoning),
            "total_tokens": prompt_tokens(messages) + produced + len(reasoning),
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reasoning)}
        completion_id = "chatcmpl-" + digest[:24]
        created = int(time.time())
        base = {"id": completion_id, "created": created, "model": model, "system_fingerprint": None}

        if not body.get("stream"):
            if paced is not None and answer:
                await asyncio.sleep(max(0.0, t_received + paced[0] + (len(answer) - 1) * paced[1] - loop.time()))
            message = {"role": "assistant", "content": "".join(answer) if answer or not calls else None}
            if reasoning:
                message["reasoning_content"] = "".join(reasoning)
            if calls:
                message["tool_calls"] = [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": "".join(chunks)}}
                    for call_id, name, chunks in calls
                ]
            choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            completion = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            if faulty is not None:
                return await faulty_answer(request, faulty, completion)
            return JSONResponse(completion)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def chunks() -> AsyncIterator[bytes]:
            def frame(choices: list, **extra) -> bytes:
                chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
                return f"data: {json.dumps(chunk)}\n\n".encode()

            def delta(**fields) -> bytes:
                return frame([{"index": 0, "delta": fields, "finish_reason": None}])

            yield delta(role="assistant", content="")
            for token in reasoning:
                yield delta(reasoning_content=token)
            for i, token in enumerate(answer):
                if model == "mock-broken-stream" and i == BROKEN_STREAM_TOKENS:
                    raise ConnectionAbortedError("mock-broken-stream: dropping the connection on purpose")
                if paced is not None:
                    # Sleep until this token's slot on the schedule (never a relative sleep).
                    delay = t_received + paced[0] + i * paced[1] - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield delta(content=token)
            for index, (call_id, name, arguments) in enumerate(calls):
                yield delta(tool_calls=[{"index": index, "id": call_id, "type": "function",
                                         "function": {"name": name, "arguments": ""}}])
                for piece in arguments:
                    yield delta(tool_calls=[{"index": index, "function": {"arguments": piece}}])
            yield frame([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
            if include_usage:
                yield frame([], usage=usage)
            yield b"data: [DONE]\n\n"

        def oversized(size: int) -> bytes:
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": "x" * size}, "finish_reason": None}]}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        frames = chunks() if faulty is None else faulty_frames(request, faulty, chunks(), oversized)
        return StreamingResponse(recorded(request, model, frames, stream=True), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    async def faulty_frames(request: Request, faulty: tuple[str, float | None], frames: AsyncIterator[bytes],
                            oversized) -> AsyncIterator[bytes]:
        """The streamed answer ``frames`` (one SSE frame each), broken as the fault mode says."""
        mode, arg = faulty
        if mode == "stall-first":
            await asyncio.sleep(FAULT_STALL_S if arg is None else arg)
        elif mode == "drip":
            interval = DRIP_INTERVAL_S if arg is None else arg
            async for frame in frames:
                for i in range(len(frame)):
                    yield frame[i:i + 1]
                    await asyncio.sleep(interval)
            return
        sent = 0
        async for frame in frames:
            if mode == "no-finish" and b'"finish_reason": null' not in frame and b'"finish_reason"' in frame:
                continue  # the finish chunk
            if sent == 1 and mode == "oversized":
                yield oversized(OVERSIZED_BYTES if arg is None else int(arg))
            if sent == 1 + FAULT_TOKENS:  # the role chunk, then FAULT_TOKENS tokens
                if mode == "stall-mid":
                    await asyncio.sleep(FAULT_STALL_S if arg is None else arg)
                elif mode == "reset":
                    await reset_connection(request)
                    return
                elif mode == "bad-json":
                    yield b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
                elif mode == "truncated":
                    request.state.fault_ended = True
                    return
            yield frame
            sent += 1

    async def stall_unless_gone(request: Request, seconds: float) -> bool:
        """Sleep, but stop when the client disconnects (the body is read: the next ASGI message
        is the disconnect), so a stalled non-streamed answer does not outlive its client.
        True when the client went away."""
        try:
            async with asyncio.timeout(seconds):
                while (await request.receive())["type"] != "http.disconnect":
                    pass
        except TimeoutError:
            return False
        return True

    async def held(request: Request, model: str, *, stream: bool, seconds: float) -> None:
        """``stall-headers``: nothing sent for ``seconds``, recorded as a stream (module docstring)."""
        record = {"model": model, "stream": stream, "started": time.monotonic(), "ended": None, "outcome": None}
        request.app.state.streams.append(record)
        gone = await stall_unless_gone(request, seconds)
        record["ended"], record["outcome"] = time.monotonic(), "cancelled" if gone else "finished"

    def rate_limited(retry_after_s: float) -> Response:
        message = "Rate limit reached for requests (mock-fault:429). Please try again in 1s."
        return JSONResponse({"error": {"message": message, "type": "requests", "param": None,
                                       "code": "rate_limit_exceeded"}}, status_code=429,
                            headers={"retry-after": f"{retry_after_s:g}",
                                     "retry-after-ms": f"{retry_after_s * 1000:g}", **RATE_LIMIT_HEADERS})

    async def reset_connection(request: Request) -> None:
        await asyncio.sleep(0.05)  # let what was written reach the client before the reset
        request.state.fault_ended = True
        if not _reset(request.scope.get("mock.transport")):
            raise ConnectionResetError("mock-fault:reset: no transport to reset")

    async def faulty_answer(request: Request, faulty: tuple[str, float | None], completion: dict) -> Response:
        """The non-streamed ``completion``, broken as the fault mode says."""
        mode, arg = faulty
        if mode == "oversized":
            size = OVERSIZED_BYTES if arg is None else int(arg)
            completion["choices"][0]["message"]["content"] = "x" * size
            return JSONResponse(completion)
        if mode == "no-finish":
            completion["choices"][0]["finish_reason"] = None
            return JSONResponse(completion)
        payload = json.dumps(completion).encode()
        half = len(payload) // 2
        if mode == "stall-first":
            await stall_unless_gone(request, FAULT_STALL_S if arg is None else arg)
            return Response(payload, media_type="application/json")
        if mode == "bad-json":
            return Response(b'{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        if mode == "truncated":
            return Response(payload[:half], media_type="application/json")

        async def pieces() -> AsyncIterator[bytes]:
            if mode == "drip":
                interval = DRIP_INTERVAL_S if arg is None else arg
                for i in range(len(payload)):
                    yield payload[i:i + 1]
                    await asyncio.sleep(interval)
                return
            yield payload[:half]
            if mode == "stall-mid":
                await asyncio.sleep(FAULT_STALL_S if arg is None else arg)
            elif mode == "reset":
                await reset_connection(request)
                return
            yield payload[half:]

        return StreamingResponse(recorded(request, completion["model"], pieces(), stream=False),
                                 media_type="application/json")

    async def recorded(request: Request, model: str, body: AsyncIterator[bytes], *,
                       stream: bool) -> AsyncIterator[bytes]:
        """``body``, with its start and end kept in ``app.state.streams`` (module docstring)."""
        record = {"model": model, "stream": stream, "started": time.monotonic(), "ended": None, "outcome": None}
        request.app.state.streams.append(record)
        outcome = "cancelled"  # unless the body runs to its end
        try:
            async for piece in body:
                yield piece
            outcome = "fault" if getattr(request.state, "fault_ended", False) else "finished"
        finally:
            if outcome == "cancelled" and getattr(request.state, "fault_ended", False):
                outcome = "fault"
            record["ended"] = time.monotonic()
            record["outcome"] = outcome

    async def models(request: Request) -> Response:
        data = [{"id": MODEL, "object": "model", "created": 0, "owned_by": "reference-gateway"}]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def tokenize(request: Request) -> Response:
        """vLLM's ``POST /tokenize`` with chat ``messages``: ``{"count", "max_model_len", "tokens"}``,
        counted as ``usage.prompt_tokens`` counts (the gateway's input_tokens endpoint asks it)."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The body is not JSON.")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return _error(400, "tokenize needs 'messages' (this mock has no tokenizer for 'prompt').", param="messages")
        count = prompt_tokens(messages)
        return JSONResponse({"count": count, "max_model_len": CONTEXT_WINDOW, "tokens": list(range(count))})

    app = _MockApp(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/tokenize", tokenize, methods=["POST"]),  # vLLM's path: outside /v1
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.requests = collections.deque(maxlen=RECORDED_REQUESTS)
    app.state.streams = collections.deque(maxlen=RECORDED_STREAMS)
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn  # deferred: only the command line serves; the tests mount the app in-process

    parser = argparse.ArgumentParser(prog="python -m reference_gateway.mock_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
