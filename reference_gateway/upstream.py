"""The chat-completions upstream: non-streamed calls through httpx (``Upstream.clients``),
streamed calls to a plain-http upstream on the wire (upstream_wire.py: an asyncio protocol and
llhttp, no httpx per token; issue 20), others through httpx as well.

Failures become ``APIError``: a 4xx from the upstream keeps its status and OpenAI envelope (it
is the client's mistake, e.g. an unknown model, or its rate limit, a 429), with the headers that
say when to try again (``backoff_headers``: ``retry-after``, ``retry-after-ms``,
``x-ratelimit-*``), so a client backs off as it would against OpenAI; anything else is 502
``upstream_error`` (a 5xx, a refused or reset connection, a body that is not JSON, a line or
body over its cap, an answer that ends before its ``finish_reason``), and a missed deadline is
504 ``upstream_timeout``.

One rule for an answer with no ``finish_reason``, streamed or not: it is truncated, an upstream
fault, never a completed response. A chat server always ends a choice with one (``stop``,
``length``, ``tool_calls``, ...); a body or stream that ends without it (a stream's body closed
or ``[DONE]`` before the finish chunk; a non-streamed choice whose ``finish_reason`` is null or
missing) lost its end, and the gateway cannot tell how much. Non-streamed: 502
``upstream_error`` (``complete``); streamed: ``error`` then ``response.failed`` with
``upstream_error`` (gateway.py, builtin/loop.py). Treating it as ``stop`` would report a cut
answer as a whole one.

Where a streamed failure shows: before the upstream's stream opens (a refused connection, a 5xx,
no headers within the first-token deadline) nothing has been sent to the client, so
``open_stream`` raises and the client gets the envelope (502/504) instead of a stream; after,
the gateway (gateway.py) ends the stream with ``error`` then ``response.failed``.

Deadlines (config.py names them):

- non-streamed: ``request_timeout_s`` for the whole exchange, one ``asyncio.timeout``;
- streamed: ``stream_first_token_timeout_s`` from sending the request to the first bytes of the
  body (the response headers are awaited under it too), then ``stream_idle_timeout_s`` of
  silence at most between two reads, and ``stream_timeout_s`` for the whole stream. A server
  that drips one byte at a time never trips the idle deadline; the whole-stream one ends it.
  By default a stream has the non-streamed deadline to its first chunk and in all, and 30 s
  between reads (``GatewayConfig.stream_deadlines``): one upstream fault, one verdict, at the
  same time, streamed or not.

The stream's deadlines cost one timer per stream, not one per chunk (the stream loop of gateway.py
is benchmarked): ``_Watchdog`` arms a ``loop.call_at`` for the nearest deadline, and each read
only stores the time it ended. When the timer fires it re-arms for the new nearest deadline, or,
if that has passed, cancels the streaming task, but only while the task awaits the upstream:
the chunk loop yields to the client between reads, and a cancellation landing in the client's
``send`` would end the stream without its terminal events. (``asyncio.timeout`` around the loop
would do exactly that, which is why it is not used there.) A deadline that passes while the
task is sending is caught before the next read. The CancelledError is taken back with
``Task.uncancel`` and becomes a 504; a cancellation from anyone else (the client went away)
passes through untouched.

Context too long: a 4xx whose message says the prompt exceeds the model's context window
(vLLM: "This model's maximum context length is N tokens. However, ..."; ``CONTEXT_EXCEEDED``
lists the wordings known) becomes 400 ``context_length_exceeded`` with ``param: "input"``, the
code OpenAI uses. Streamed, the upstream refuses before its stream opens, so the client gets the
envelope instead of a stream. ``truncation: "disabled"`` (the default) ends there: no input is
dropped. ``truncation: "auto"`` (the caller passes the request's ``truncation``): the same
body is sent again without its oldest non-system messages (``translate.drop_oldest``; 1, then 2,
4, 8, ... of them, at most ``MAX_TRUNCATION_RETRIES`` times, never the last message) until the
upstream accepts it; when nothing more can go the refusal stands. The stored conversation is
never truncated, only what one upstream call sees.

Caps: the stream is split into lines here, on the bytes, so an endless line is refused once it
passes ``upstream_max_line_bytes`` instead of being buffered whole first (httpx's
``aiter_lines`` buffers it all). A non-streamed body, and the body of an error answer, is read up
to ``upstream_max_body_bytes``. Lines end with ``\\n`` (``\\r\\n`` works too; a bare ``\\r``, legal
in SSE but sent by no chat server, is not a line end here).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson

from reference_gateway.config import GatewayConfig
from reference_gateway.errors import APIError
from reference_gateway.observe import upstream_failed
from reference_gateway.translate import drop_oldest
from reference_gateway.upstream_wire import WirePool, WireResponse

# How chat servers say that the prompt does not fit: vLLM ("This model's maximum context length
# is N tokens. However, your prompt contains M input tokens ..."; older: "However, you requested
# M tokens"), OpenAI (the same sentence, and code context_length_exceeded), SGLang ("... is
# longer than the model's context length"), llama.cpp ("the request exceeds the available
# context size", type exceed_context_size_error).
CONTEXT_EXCEEDED = re.compile(r"maximum context length|longer than the model's context length|"
                              r"exceeds the available context size", re.IGNORECASE)
CONTEXT_CODES = ("context_length_exceeded", "exceed_context_size_error")
# ``truncation: auto`` drops 1, 2, 4, ... messages: 20 doublings are more messages than a
# request body of the gateway's default 1 MiB cap can hold.
MAX_TRUNCATION_RETRIES = 20

def _bad_gateway(message: str, kind: str = "protocol") -> APIError:
    upstream_failed(kind)  # -- observability (issue 8): metrics.UPSTREAM_ERROR_KINDS
    return APIError(502, f"Upstream error: {message}", type="server_error", code="upstream_error")


def _timeout(message: str = "The upstream did not answer in time.") -> APIError:
    upstream_failed("timeout")
    return APIError(504, message, type="server_error", code="upstream_timeout")


def _transport_error(exc: httpx.HTTPError) -> APIError:
    """A failed connection or a broken answer, said so that an operator knows which."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        try:
            url = str(exc.request.url)
        except RuntimeError:  # no request attached
            url = "the upstream"
        return _bad_gateway(f"cannot connect to {url}: {detail}", "connect")
    if isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)):
        named = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _bad_gateway(f"the connection broke mid-answer ({named})")
    return _bad_gateway(detail)


async def _read(response: httpx.Response, cap: int) -> bytes:
    """The whole body, refused once it passes ``cap`` bytes."""
    parts, size = [], 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > cap:
            raise _bad_gateway(f"the answer exceeds {cap} bytes")
        parts.append(part)
    return b"".join(parts)


def _json_bytes(body: dict) -> bytes:
    """The request body as httpx's ``json=`` would send it (orjson; the standard library for
    what orjson refuses, an integer past 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()


def backoff_headers(headers: httpx.Headers) -> dict[str, str]:
    """What tells a client when to try again: ``retry-after`` (RFC 9110, 10.2.3), the
    ``retry-after-ms`` the openai SDKs read before it, and OpenAI's ``x-ratelimit-*``."""
    return {name: value for name, value in headers.items()
            if name in ("retry-after", "retry-after-ms") or name.startswith("x-ratelimit-")}


async def _raise_for_status(response: httpx.Response, cap: int) -> None:
    if response.is_success:
        return
    data = await _read(response, cap)
    try:
        error = orjson.loads(data)["error"]
        message = str(error.get("message") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        error, message = {}, data[:200].decode("utf-8", "replace")
    if 400 <= response.status_code < 500:
        upstream_failed("status_4xx")
        if CONTEXT_EXCEEDED.search(message) or error.get("code") in CONTEXT_CODES \
                or error.get("type") in CONTEXT_CODES:
            raise APIError(400, message or "The input exceeds the model's context window.", param="input",
                           code="context_length_exceeded")
        raise APIError(
            response.status_code,
            message or f"upstream returned {response.status_code}",
            type=str(error.get("type") or "invalid_request_error"),
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            code=error.get("code") if isinstance(error.get("code"), str) else None,
            headers=backoff_headers(response.headers),
        )
    kind = "status_5xx" if response.status_code >= 500 else "protocol"
    raise _bad_gateway(f"status {response.status_code}: {message}", kind)


# httpcore's pool looks at every connection it holds each time a request starts or ends (is it
# idle, expired, readable: a syscall each), so with hundreds of kept-alive connections one pool
# costs O(connections) per request: 65% of the gateway's CPU at 256 streams once connections
# were reused (issue 20's profile). 16 pools taken in turn hold 1/16 of them each.
UPSTREAM_POOL_SHARDS = 16
# Concurrent upstream streams per gateway process (vLLM's own default max_num_seqs is 256;
# twice that leaves room for non-streamed calls and background work).
UPSTREAM_MAX_CONNECTIONS = 512


class _Watchdog:
    """One timer for a stream's three deadlines (module docstring). ``expired`` is the message
    of the deadline that passed, or None."""

    __slots__ = ("_end", "_first", "_handle", "_idle", "_loop", "_task", "expired", "fired", "last", "reading")

    def __init__(self, started: float, first_token_s: float, idle_s: float, total_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._first = (started + first_token_s, f"The upstream sent nothing within {first_token_s:g} s.")
        self._end = (started + total_s, f"The upstream stream did not finish within {total_s:g} s.")
        self._idle = idle_s
        self.last: float | None = None  # when the last read ended; set by the reader
        self.reading = False  # the task is awaiting the upstream; set by the reader
        self.expired: str | None = None
        self.fired = False  # the task was cancelled by this watchdog
        self._handle = self._loop.call_at(min(self._first[0], self._end[0]), self._check)

    def _due(self) -> tuple[float, str]:
        if self.last is None:
            nearest = self._first
        else:
            nearest = (self.last + self._idle, f"The upstream fell silent for more than {self._idle:g} s.")
        return nearest if nearest[0] < self._end[0] else self._end

    def _check(self) -> None:
        due, message = self._due()
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self.expired = message
        if self.reading and self._task is not None:
            self.fired = True
            self._task.cancel()

    def first_read(self, now: float) -> None:
        """The first bytes came: from now on the idle deadline counts, and it may fall before
        the time the timer is armed for (the first-token deadline): re-arm it once. Later reads
        only move the idle deadline later, which the timer finds when it fires."""
        self.last = now
        due = self._due()[0]
        if due < self._handle.when():
            self._handle.cancel()
            self._handle = self._loop.call_at(due, self._check)

    def taken_back(self) -> bool:
        """After a CancelledError: True when it was this watchdog's alone (now undone)."""
        return self.fired and self._task is not None and self._task.uncancel() == 0

    def close(self) -> None:
        self._handle.cancel()


def _parsed(lines: list[bytes], cap: int) -> tuple[list[dict], str | None, bool]:
    """Whole SSE lines of a chat stream: its chunks, what stops it (a line over ``cap``, a
    chunk that is not JSON, an ``error`` object: the message of the 502 the reader raises, the
    chunks before it first), and whether ``data: [DONE]`` came (what follows is not read).
    No side effect: the inline relay tries reads with it and may leave them to the reader."""
    batch: list[dict] = []
    for line in lines:
        if not line.startswith(b"data:"):
            continue  # comments, event:, id:, blank separators
        if len(line) > cap:
            return batch, f"an SSE line exceeds {cap} bytes", False
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return batch, None, True
        try:
            chunk = orjson.loads(payload)
        except ValueError:
            return batch, "a streamed chunk is not JSON", False
        if isinstance(chunk, dict) and "error" in chunk:
            error = chunk["error"]
            return batch, str(error.get("message", error) if isinstance(error, dict) else error), False
        batch.append(chunk)
    return batch, None, False


class UpstreamStream:
    """An open streamed chat completion whose status was a success (its response an
    ``httpx.Response`` or, on the wire, a ``upstream_wire.WireResponse``)."""

    def __init__(self, response: httpx.Response | WireResponse, *, started: float, first_token_s: float, idle_s: float,
                 total_s: float, max_line: int) -> None:
        self.response = response
        self._started = started
        self._deadlines = (first_token_s, idle_s, total_s)
        self._max_line = max_line
        self._body = response.aiter_bytes()
        self._done = False  # ``data: [DONE]`` was read: what may follow is the body's end

    async def chunks(self) -> AsyncIterator[dict]:
        """Chat chunks until ``data: [DONE]`` or the end of the body, under the stream's
        deadlines; every failure surfaces as ``APIError``. Iterate it from one task only."""
        reads = self.reads()
        try:
            async for batch in reads:
                for chunk in batch:
                    yield chunk
        finally:
            await reads.aclose()  # its watchdog's timer with it

    async def reads(self, inline: Callable[[list[dict]], bool] | None = None) -> AsyncIterator[list[dict]]:
        """``chunks``, as the lists that each read of the upstream brought (never empty): what
        arrived together can leave together, in one write to the client (gateway.py). A failure
        comes after the chunks that preceded it in its read, as with ``chunks``.

        ``inline``: while this waits for the upstream (on the wire only), a read that is whole
        lines of chunks, with no failure and no ``[DONE]``, is offered to ``inline`` inside the
        loop's callback that brought it (upstream_wire.py, ``WireResponse.divert``); when it
        returns True the chunks are its own, and are not yielded here. It sees only such reads:
        partial lines, failures, deadlines and the end stay on this path, in order."""
        watch = _Watchdog(self._started, *self._deadlines)
        loop, cap = asyncio.get_running_loop(), self._max_line
        pending: bytearray | None = None  # a line begun in an earlier read
        divert = self.response.divert if inline is not None and isinstance(self.response, WireResponse) else None

        def sink(data: bytes) -> bool:
            if watch.last is None or data[-1:] != b"\n":
                return False
            batch, failure, done = _parsed(data.split(b"\n")[:-1], cap)
            if failure is not None or done or not batch or not inline(batch):
                return False
            watch.last = loop.time()
            return True

        try:
            watch.reading = True  # a deadline already past fires on the loop's next turn
            if divert is not None:
                divert(sink)
            async for data in self._body:
                if divert is not None:
                    divert(None)  # until this read is handled, and its batch sent
                watch.reading = False
                if watch.last is None:
                    watch.first_read(loop.time())
                else:
                    watch.last = loop.time()
                if pending is not None:
                    pending += data
                    if b"\n" not in data:
                        if len(pending) > cap:
                            raise _bad_gateway(f"an SSE line exceeds {cap} bytes")
                        watch.reading = True
                        continue
                    data, pending = bytes(pending), None
                lines = data.split(b"\n")
                tail = lines.pop()
                if tail:
                    if len(tail) > cap:
                        raise _bad_gateway(f"an SSE line exceeds {cap} bytes")
                    pending = bytearray(tail)
                batch, failure, self._done = _parsed(lines, cap)
                if batch:
                    yield batch
                if failure is not None:
                    raise _bad_gateway(failure)
                if self._done:
                    return
                if watch.expired:
                    raise _timeout(watch.expired)
                watch.reading = True
                if divert is not None and pending is None:
                    divert(sink)
        except asyncio.CancelledError:
            if watch.taken_back():
                raise _timeout(watch.expired or "The upstream did not answer in time.") from None
            raise
        except httpx.TimeoutException:
            raise _timeout(watch.expired or "The upstream did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        finally:
            if divert is not None:
                divert(None)
            watch.close()

    async def aclose(self) -> None:
        """Close the upstream request. After ``[DONE]`` the rest of the body (the chunked
        encoding's last chunk, usually in the same read) is read first, briefly and up to a cap,
        so that the connection goes back to the pool: httpcore drops a connection whose response
        was closed unread, and the next stream would pay a new TCP connection (and the upstream
        an accept)."""
        if self._done and not self.response.is_closed:
            self._done = False
            try:
                async with asyncio.timeout(DRAIN_AFTER_DONE_S):
                    left = DRAIN_AFTER_DONE_BYTES
                    async for rest in self._body:
                        left -= len(rest)
                        if left < 0:
                            break
            except (TimeoutError, httpx.HTTPError):
                pass  # the connection is dropped, as it would have been
        await self.response.aclose()


# After ``data: [DONE]``: how long, and how many bytes, the end of the body is waited for before
# the connection is given up (UpstreamStream.aclose).
DRAIN_AFTER_DONE_S = 0.1
DRAIN_AFTER_DONE_BYTES = 64 * 1024


class Upstream:
    def __init__(self, config: GatewayConfig) -> None:
        headers = {"Authorization": f"Bearer {config.upstream_api_key}"} if config.upstream_api_key else {}
        self._deadline = config.request_timeout_s
        self._first_token_s, self._idle_s, self._stream_s = config.stream_deadlines
        self._max_line = config.upstream_max_line_bytes
        self._max_body = config.upstream_max_body_bytes
        # A stream's reads carry no httpx timeout: the watchdog (``UpstreamStream.reads``) holds
        # its deadlines, and the head and the request's write run under ``asyncio.timeout_at``
        # (``_open``). With a timeout, httpcore arms and cancels an anyio deadline (a cancel
        # scope and a loop timer) around every read of every token: ~15 % of the gateway's CPU
        # at 64 streams (reports/benchmarks/gateway-overhead.md).
        self._stream_timeout = httpx.Timeout(None, connect=config.connect_timeout_s)
        # Several clients, each with a pool of its own, taken in turn (``UPSTREAM_POOL_SHARDS``).
        self.clients = [httpx.AsyncClient(
            base_url=config.upstream_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.request_timeout_s, connect=config.connect_timeout_s),
            # httpx's default pool (100 connections, 20 kept alive) queues streams beyond 100
            # and reconnects beyond 20: a gateway in front of a GPU server carries hundreds.
            # The process-wide cap split evenly: the shards are taken in turn, so they fill alike.
            limits=httpx.Limits(max_connections=UPSTREAM_MAX_CONNECTIONS // UPSTREAM_POOL_SHARDS,
                                max_keepalive_connections=UPSTREAM_MAX_CONNECTIONS // UPSTREAM_POOL_SHARDS),
        ) for _ in range(UPSTREAM_POOL_SHARDS)]
        self._turns = itertools.cycle(self.clients)
        # Streamed calls to a plain-http upstream go on the wire (upstream_wire.py), not through
        # httpx; observe.py sets this to None when tracing instruments the httpx clients.
        self.wire: WirePool | None = WirePool(
            config.upstream_url, headers, connect_timeout_s=config.connect_timeout_s,
            max_connections=UPSTREAM_MAX_CONNECTIONS) if WirePool.serves(config.upstream_url) else None

    def _next_client(self) -> httpx.AsyncClient:
        """The client of the next request: the shards in turn."""
        return next(self._turns)

    async def _json(self, method: str, path: str, what: str, body: dict | None = None) -> object:
        """One non-streamed exchange under one deadline; errors mapped to 502/504 envelopes."""
        try:
            async with asyncio.timeout(self._deadline):
                client = self._next_client()
                request = client.build_request(method, path, json=body)
                response = await client.send(request, stream=True)
                try:
                    await _raise_for_status(response, self._max_body)
                    data = await _read(response, self._max_body)
                finally:
                    await response.aclose()
                return orjson.loads(data)
        except (TimeoutError, httpx.TimeoutException):
            raise _timeout(f"The upstream did not answer within {self._deadline:g} s.") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        except ValueError:
            raise _bad_gateway(f"{what} is not JSON") from None

    @staticmethod
    async def _fitted(body: dict, send: Callable[[dict], Awaitable], truncation: str):
        """``send(body)``; under ``truncation: auto``, again without the oldest messages while the
        upstream says the context is too long (module docstring). Each attempt has its own
        deadline; there are at most ``MAX_TRUNCATION_RETRIES`` more."""
        auto = truncation == "auto" and isinstance(body.get("messages"), list)
        attempt, count = body, 0
        for _ in range(MAX_TRUNCATION_RETRIES):
            try:
                return await send(attempt)
            except APIError as exc:
                if not auto or exc.code != "context_length_exceeded":
                    raise
                count = max(1, 2 * count)
                shorter = drop_oldest(body["messages"], count)
                if len(shorter) == len(attempt["messages"]):
                    raise  # nothing more can go: the refusal stands
                attempt = {**body, "messages": shorter}
        return await send(attempt)

    async def complete(self, body: dict, *, truncation: str = "disabled") -> dict:
        """A non-streamed chat completion, under one deadline for the whole exchange (trimmed
        until it fits under ``truncation: auto``)."""
        completion = await self._fitted(body, lambda b: self._json("POST", "/chat/completions", "the answer", b),
                                        truncation)
        if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
            raise _bad_gateway("the answer is not a chat completion")
        choice = completion["choices"][0] if completion["choices"] else None
        if not isinstance(choice, dict) or not choice.get("finish_reason"):
            raise _bad_gateway("the answer ended before its finish_reason.")
        return completion

    async def respond(self, body: dict) -> dict:
        """A non-streamed native Responses call (``POST /responses``; native.py)."""
        answer = await self._json("POST", "/responses", "the answer", body)
        if not isinstance(answer, dict) or not isinstance(answer.get("output"), list):
            raise _bad_gateway("the answer is not a Response object")
        return answer

    async def open_stream(self, body: dict, *, path: str = "/chat/completions",
                          truncation: str = "disabled") -> UpstreamStream:
        """Send a streamed request (``_open``), under ``truncation: auto`` trimmed until it fits."""
        return await self._fitted(body, lambda b: self._open(b, path), truncation)

    async def _open(self, body: dict, path: str) -> UpstreamStream:
        """Send a streamed request and check its status before the caller commits to a 200.

        The first-token deadline (and the whole-stream one) already runs here: a server that
        holds back its headers gets a 504 envelope, not a stream."""
        started = asyncio.get_running_loop().time()
        wire = self.wire
        if wire is None:
            client = self._next_client()
            request = client.build_request("POST", path, json=body, timeout=self._stream_timeout)
        try:
            async with asyncio.timeout_at(started + min(self._first_token_s, self._stream_s)):
                if wire is not None:
                    response = await wire.post(path, _json_bytes(body))
                else:
                    response = await client.send(request, stream=True)
                try:
                    await _raise_for_status(response, self._max_body)
                except BaseException:
                    await response.aclose()
                    raise
        except (TimeoutError, httpx.TimeoutException):
            waited = min(self._first_token_s, self._stream_s)
            raise _timeout(f"The upstream sent nothing within {waited:g} s.") from None
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        return UpstreamStream(response, started=started, first_token_s=self._first_token_s, idle_s=self._idle_s,
                              total_s=self._stream_s, max_line=self._max_line)

    async def models(self) -> dict:
        return await self._json("GET", "/models", "the model list")

    async def tokenize(self, body: dict) -> int | None:
        """vLLM's ``POST /tokenize`` (at the server's root, beside ``/v1``) with chat ``messages``:
        the prompt's token count by the model's own tokenizer and chat template. None when the
        upstream has no such route (404, 405, 501) or answers no integer ``count``; any other
        failure is the usual envelope (a 4xx keeps its status, upstream.py)."""
        root = str(self.clients[0].base_url).rstrip("/")
        root = root.removesuffix("/v1")
        try:
            answer = await self._json("POST", root + "/tokenize", "the token count", body)
        except APIError as exc:
            if exc.status in (404, 405, 501):
                return None
            raise
        count = answer.get("count") if isinstance(answer, dict) else None
        return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None

    async def aclose(self) -> None:
        if self.wire is not None:
            self.wire.close()
        for client in self.clients:
            await client.aclose()
