"""The paced mock upstream, lean: ``mock-paced``'s streamed answers, the same chunks as the
embedded mock (reference_gateway/mock_upstream.py) sends them, from an asyncio protocol that
writes pre-rendered frames on a timer instead of a Starlette app that renders each token with
``json.dumps`` and sleeps a task per token.

Why (issue 20): in the overhead benchmark the mock stands in for a GPU server, whose CPU is not
on the gateway's machine. At 256 streams the embedded mock spent ~31 µs of CPU per token, more
than the floor of a Python relay (~14), and with the load generator it took more than half of
the 2 cores the gateway is measured on (reports/benchmarks/gateway-overhead.md). This one costs
12-15 µs per token there, most of it the write syscall and the loop's timer, so what the
benchmark measures is more the gateway and less the mock's share of the machine. The issue
asked for exactly this ("a cheaper mock"), never a lower threshold.

What it answers: ``POST {prefix}/chat/completions`` for ``mock-paced[:TTFT_MS:ITL_MS]`` with
``max_tokens`` (or ``max_completion_tokens``), streamed (with ``stream_options.include_usage``)
or not; ``GET {prefix}/models``; ``GET /health``. The tokens, ids, usage and finish reason are
the embedded mock's (its ``tokens``, ``prompt_tokens`` and ``pace``), on the same absolute
schedule (first content token ``TTFT`` after the request, then one every ``ITL``). Anything
else is the OpenAI error envelope (400 or 404). HTTP/1.1 with keep-alive; a request body over
``MAX_BODY_BYTES`` is refused with 413 and the connection closed.

``python -m loadtests.servers paced`` runs it (loadtests/servers.py); ``overhead.py`` uses it
unless ``--mock app`` asks for the embedded one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time

import httptools

from loadtests.relay import run_on_uvloop, serve_until_signalled
from reference_gateway.mock_upstream import MODEL, pace, prompt_tokens, tokens

MAX_BODY_BYTES = 1024 * 1024
_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 413: b"Content Too Large"}


def _chunked(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def _json_response(status: int, payload: dict, *, close: bool = False) -> bytes:
    body = json.dumps(payload).encode()
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            % (status, _REASONS[status], len(body)))
    return head + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


def _error(status: int, message: str, param: str | None = None) -> bytes:
    return _json_response(status, {"error": {"message": message, "type": "invalid_request_error",
                                             "param": param, "code": None}})


class Answer:
    """One paced answer, rendered before the first byte: ``frames[i]`` is due ``at[i]``."""

    def __init__(self, body: dict, limit: int, paced: tuple[float, float], t_received: float) -> None:
        messages, model = body["messages"], body["model"]
        asked = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        digest = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
        answer = tokens(messages, limit)  # as the embedded mock: never stops early
        prompt = prompt_tokens(messages)
        self.usage = {"prompt_tokens": prompt, "completion_tokens": len(answer),
                      "total_tokens": prompt + len(answer)}
        self.base = {"id": "chatcmpl-" + digest[:24], "created": int(time.time()), "model": model,
                     "system_fingerprint": None}
        self.answer = answer
        self.ttft, self.itl = paced
        self.t_received = t_received

    def _frame(self, choices: list, **extra) -> bytes:
        chunk = {**self.base, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def stream(self, include_usage: bool) -> tuple[list[bytes], list[float]]:
        """Each write's bytes and when it is due (loop time), as the embedded mock streams: the
        role chunk at once, each token on its slot, the end right after the last token."""
        def delta(**fields) -> bytes:
            return self._frame([{"index": 0, "delta": fields, "finish_reason": None}])

        frames = [_STREAM_HEAD + _chunked(delta(role="assistant", content=""))]
        at = [self.t_received]
        for i, token in enumerate(self.answer):
            frames.append(_chunked(delta(content=token)))
            at.append(self.t_received + self.ttft + i * self.itl)
        end = self._frame([{"index": 0, "delta": {}, "finish_reason": "length"}])
        if include_usage:
            end += self._frame([], usage=self.usage)
        frames.append(_chunked(end + b"data: [DONE]\n\n") + b"0\r\n\r\n")
        at.append(at[-1])
        return frames, at

    def whole(self) -> tuple[bytes, float]:
        message = {"role": "assistant", "content": "".join(self.answer)}
        completion = {**self.base, "object": "chat.completion",
                      "choices": [{"index": 0, "message": message, "finish_reason": "length", "logprobs": None}],
                      "usage": self.usage}
        return _json_response(200, completion), self.t_received + self.ttft + (len(self.answer) - 1) * self.itl


class PacedProtocol(asyncio.Protocol):
    """One client connection: requests parsed by llhttp, answers written on timers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.timer: asyncio.TimerHandle | None = None  # the answer's next write
        self._url = b""
        self._body: list[bytes] = []
        self._size = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(_error(400, "The request is not HTTP/1.1."))
            self.transport.close()

    # -- llhttp's callbacks
    def on_message_begin(self) -> None:
        self._url, self._body, self._size = b"", [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= MAX_BODY_BYTES:
            self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self._url.split(b"?", 1)[0]
        if self._size > MAX_BODY_BYTES:
            self.transport.write(_json_response(413, {"error": {
                "message": f"The request body exceeds {MAX_BODY_BYTES} bytes.", "type": "invalid_request_error",
                "param": None, "code": None}}, close=True))
            self.transport.close()
        elif method == b"GET" and path.endswith(b"/models"):
            self.transport.write(_json_response(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "reference-gateway"}]}))
        elif method == b"GET" and path == b"/health":
            self.transport.write(_json_response(200, {"status": "ok"}))
        elif method == b"POST" and path.endswith(b"/chat/completions"):
            self._chat(b"".join(self._body))
        else:
            self.transport.write(_error(404, f"No route for {method.decode()} {path.decode('latin-1')}."))

    def _chat(self, raw: bytes) -> None:
        loop = asyncio.get_running_loop()
        t_received = loop.time()
        try:
            body = json.loads(raw)
        except ValueError:
            self.transport.write(_error(400, "The request body is not valid JSON."))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            self.transport.write(_error(400, "'messages' must be a non-empty array.", "messages"))
            return
        model = body.get("model")
        paced = pace(model) if isinstance(model, str) else None
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if paced is None or not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            self.transport.write(_error(400, "This upstream serves mock-paced[:TTFT_MS:ITL_MS] with a positive "
                                             "max_tokens only (the embedded mock serves the rest).", "model"))
            return
        answer = Answer(body, limit, paced, t_received)
        if not body.get("stream"):
            data, due = answer.whole()
            self.timer = loop.call_at(due, self._write, data)
            return
        frames, at = answer.stream(bool((body.get("stream_options") or {}).get("include_usage")))
        self.transport.write(frames[0])
        self._next(frames, at, 1)

    def _next(self, frames: list[bytes], at: list[float], i: int) -> None:
        """Frame ``i`` on its time; one timer per stream at a time, so frames due together
        still leave in order."""
        self.timer = asyncio.get_running_loop().call_at(at[i], self._step, frames, at, i)

    def _step(self, frames: list[bytes], at: list[float], i: int) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        self.transport.write(frames[i])
        if i + 1 < len(frames):
            self._next(frames, at, i + 1)

    def _write(self, data: bytes) -> None:
        self.timer = None
        if not self.transport.is_closing():
            self.transport.write(data)


def run(sock: socket.socket) -> int:
    """``python -m loadtests.servers paced``: serve on the bound ``sock`` until SIGTERM."""
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(PacedProtocol, sock=sock)
        await serve_until_signalled(server, "/v1")

    run_on_uvloop(main())
    return 0
