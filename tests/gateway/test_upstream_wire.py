"""Streamed upstream calls on the wire (upstream_wire.py), against a hand-written HTTP/1.1 server
on loopback that answers each request as the test scripts it: well, broken, or closing early.

What it claims and is tested for here: the request it writes (path, auth, JSON body); the head
cap; bytes that are not HTTP; a chunked body cut short; a body that ends with the connection;
``Connection: close``; an idle connection the upstream closed; a reused connection closed
before it answered (retried once) and a fresh one that does the same (an error); reading paused
while the reader lags; which upstreams it serves (plain http, no proxy).
"""

from __future__ import annotations

import asyncio
from typing import Self

import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.errors import APIError
from reference_gateway.upstream import Upstream
from reference_gateway.upstream_wire import MAX_BUFFERED_BYTES, MAX_HEAD_BYTES, WirePool

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


WHOLE = OK_HEAD + _chunk(_sse(b'{"a": 1}', b'{"a": 2}', b"[DONE]")) + b"0\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request (head and its Content-Length body), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


class Server:
    """``script(connection_number, request_number_on_it, writer)`` answers each request; the
    requests are kept in ``requests``."""

    def __init__(self, script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        number, served = self.connections, 0
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                served += 1
                if await self.script(number, served, writer) == "close":
                    break
        finally:
            writer.close()


async def _collect(upstream: Upstream) -> tuple[list[dict], APIError | None]:
    chunks: list[dict] = []
    try:
        stream = await upstream.open_stream(BODY)
    except APIError as exc:
        return chunks, exc
    try:
        async for chunk in stream.chunks():
            chunks.append(chunk)
        return chunks, None
    except APIError as exc:
        return chunks, exc
    finally:
        await stream.aclose()


def _run(script, *, calls: int = 1, pause_s: float = 0.0, api_key: str | None = None):
    """``calls`` streams one after another against a Server running ``script``: their results,
    the server, and the pool's idle connections at the end."""

    async def run():
        async with Server(script) as server:
            upstream = Upstream(GatewayConfig(upstream_url=server.url, upstream_api_key=api_key,
                                              connect_timeout_s=2.0, request_timeout_s=5.0))
            assert upstream.wire is not None
            try:
                results = []
                for _ in range(calls):
                    results.append(await _collect(upstream))
                    await asyncio.sleep(pause_s)
                return results, server, upstream.wire.idle_connections()
            finally:
                await upstream.aclose()

    return asyncio.run(run())


def _answer(data: bytes, then: str | None = None):
    async def script(conn, served, writer):
        writer.write(data)
        await writer.drain()
        return then

    return script


def test_a_whole_answer_its_request_and_the_connection_kept():
    results, server, idle = _run(_answer(WHOLE), calls=3, api_key="k-1")
    assert results == [([{"a": 1}, {"a": 2}], None)] * 3
    assert server.connections == 1 and idle == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k-1" in head and b"\r\nAccept: text/event-stream" in head
    assert body == b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'


def test_a_head_over_the_cap_is_a_502():
    big = b"HTTP/1.1 200 OK\r\n" + b"x-filler: " + b"y" * MAX_HEAD_BYTES + b"\r\n\r\n"
    (_chunks, error), = _run(_answer(big))[0]
    assert error.status == 502 and f"head exceeds {MAX_HEAD_BYTES} bytes" in error.message


def test_bytes_that_are_not_http_are_a_502():
    (_chunks, error), = _run(_answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "close"))[0]
    assert error.status == 502 and "not HTTP/1.1" in error.message


def test_a_chunked_body_cut_short_is_a_502_after_what_came():
    cut = OK_HEAD + _chunk(_sse(b'{"a": 1}'))
    (chunks, error), = _run(_answer(cut, "close"))[0]
    assert chunks == [{"a": 1}]
    assert error.status == 502 and "broke mid-answer" in error.message


def test_a_body_that_ends_with_the_connection_is_whole_and_not_reused():
    unframed = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n" + _sse(b'{"a": 1}', b"[DONE]")
    (result,), _server, idle = _run(_answer(unframed, "close"))
    assert result == ([{"a": 1}], None) and idle == 0


def test_connection_close_is_honoured():
    closing = WHOLE.replace(b"transfer-encoding: chunked\r\n", b"transfer-encoding: chunked\r\nconnection: close\r\n")
    results, server, idle = _run(_answer(closing), calls=2)
    assert results == [([{"a": 1}, {"a": 2}], None)] * 2
    assert server.connections == 2 and idle == 0


def test_an_idle_connection_the_upstream_closed_is_not_used():
    async def script(conn, served, writer):
        writer.write(WHOLE)
        await writer.drain()
        await asyncio.sleep(0.05)
        return "close"  # keep-alive said, then closed while idle

    results, server, _ = _run(script, calls=2, pause_s=0.3)
    assert results == [([{"a": 1}, {"a": 2}], None)] * 2 and server.connections == 2


def test_a_reused_connection_closed_before_answering_is_retried_once():
    async def script(conn, served, writer):
        if conn == 1 and served == 2:
            return "close"  # read the request, answered nothing
        writer.write(WHOLE)
        await writer.drain()

    results, server, _ = _run(script, calls=2)
    assert results == [([{"a": 1}, {"a": 2}], None)] * 2
    assert server.connections == 2 and len(server.requests) == 3


def test_a_fresh_connection_closed_before_answering_is_a_502():
    async def script(conn, served, writer):
        return "close"

    (result,), server, _ = _run(script)
    assert result[1].status == 502 and "disconnected without sending a response" in result[1].message
    assert server.connections == 1  # no retry on a connection that was new


def test_reading_pauses_while_the_reader_lags():
    line = _sse(b'{"a": "' + b"x" * 4000 + b'"}')
    count = 2 * 1024 * 1024 // len(line)

    async def run():
        async def script(conn, served, writer):
            writer.write(OK_HEAD)
            for _ in range(count):
                writer.write(_chunk(line))
            writer.write(_chunk(_sse(b"[DONE]")) + b"0\r\n\r\n")
            await writer.drain()

        async with Server(script) as server:
            upstream = Upstream(GatewayConfig(upstream_url=server.url))
            try:
                stream = await upstream.open_stream(BODY)
                conn = stream.response._conn
                await asyncio.sleep(0.5)  # the reader lags: the upstream has sent it all by now
                buffered = conn.buffered
                got = [chunk async for chunk in stream.chunks()]
                await stream.aclose()
                return buffered, len(got)
            finally:
                await upstream.aclose()

    buffered, got = asyncio.run(run())
    assert 0 < buffered < MAX_BUFFERED_BYTES + 512 * 1024  # one read past the mark at most
    assert got == count  # nothing lost while paused


@pytest.mark.parametrize("url, env, serves", [
    ("http://127.0.0.1:8000/v1", {}, True),
    ("https://api.example.com/v1", {}, False),
    ("http://gpu-box:8000/v1", {"HTTP_PROXY": "http://proxy:3128"}, False),
    ("http://gpu-box:8000/v1", {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "gpu-box"}, True),
    ("http://gpu-box:8000/v1", {"ALL_PROXY": "http://proxy:3128"}, False),
    ("http://user:secret@gpu-box:8000/v1", {}, False),
    ("http://[::1]:8000/v1", {}, True),
])
def test_which_upstreams_go_on_the_wire(monkeypatch, url, env, serves):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
                 "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert WirePool.serves(url) is serves


# -- the inline sink (upstream.py ``reads(inline)``, ``WireResponse.divert``) ----------------------

def _paced(*pieces: bytes, gap_s: float = 0.1):
    """A streamed answer written as ``pieces`` (each one chunk of the chunked body), ``gap_s``
    apart so that each arrives in a read of its own, then the body's end."""
    async def script(conn, served, writer):
        writer.write(OK_HEAD)
        for piece in pieces:
            writer.write(_chunk(piece))
            await writer.drain()
            await asyncio.sleep(gap_s)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return script


def _read_inline(script, inline):
    """Every read of one stream: ``("reader" | "inline", chunks)`` in the order they came, and
    what the reader raised (None)."""
    async def run():
        async with Server(script) as server:
            upstream = Upstream(GatewayConfig(upstream_url=server.url, request_timeout_s=5.0))
            came: list[tuple[str, list[dict]]] = []

            def offered(batch: list[dict]) -> bool:
                taken = inline(batch)
                if taken:
                    came.append(("inline", batch))
                return taken

            stream = await upstream.open_stream(BODY)
            try:
                async for batch in stream.reads(offered):
                    came.append(("reader", batch))
                return came, None
            except Exception as exc:  # noqa: BLE001 - what the reader raised is the result
                return came, exc
            finally:
                await stream.aclose()
                await upstream.aclose()

    return asyncio.run(run())


def test_inline_takes_whole_reads_of_chunks_and_leaves_the_rest_in_order():
    """The first read, a line split across reads, a read the sink declines and [DONE] stay with
    the reader; whole reads of chunks after the first go inline; nothing is lost or reordered."""
    script = _paced(_sse(b'{"n": 0}'), _sse(b'{"n": 1}'), b'data: {"n": ', b'2}\n\n', _sse(b'{"n": 3}'),
                    _sse(b'{"n": 4}', b'{"n": 5}'), _sse(b"[DONE]"))
    came, failure = _read_inline(script, lambda batch: batch[0]["n"] != 3)
    assert failure is None
    assert came == [("reader", [{"n": 0}]), ("inline", [{"n": 1}]), ("reader", [{"n": 2}]),
                    ("reader", [{"n": 3}]), ("inline", [{"n": 4}, {"n": 5}])]


def test_inline_never_takes_a_failure_the_reader_raises_it_after_what_came():
    script = _paced(_sse(b'{"n": 0}'), _sse(b'{"n": 1}'), _sse(b'{"n": 2}', b'{"error": {"message": "boom"}}'))
    came, failure = _read_inline(script, lambda batch: True)
    assert came == [("reader", [{"n": 0}]), ("inline", [{"n": 1}]), ("reader", [{"n": 2}])]
    assert isinstance(failure, APIError) and failure.status == 502 and "boom" in failure.message


def test_what_inline_raises_is_raised_by_the_reader():
    def inline(batch):
        if batch[0]["n"] == 2:
            raise RuntimeError("a gateway bug")
        return True

    script = _paced(*[_sse(b'{"n": %d}' % n) for n in range(5)], _sse(b"[DONE]"))
    came, failure = _read_inline(script, inline)
    assert came == [("reader", [{"n": 0}]), ("inline", [{"n": 1}])]
    assert isinstance(failure, RuntimeError) and str(failure) == "a gateway bug"
