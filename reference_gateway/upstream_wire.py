"""Streamed upstream calls on the wire: HTTP/1.1 over an asyncio ``Protocol``, parsed by llhttp.

Why not httpx for the stream (issue 20): each relayed token crossed httpx's byte iterators,
httpcore's connection and h11's pure-Python parser, on anyio's socket stream: about 40 % of the
gateway's CPU at 256 streams (reports/benchmarks/gateway-overhead.md). Here a token's bytes go
from the loop's ``data_received`` through llhttp (``httptools``, C; it undoes chunked
transfer-encoding, nothing more) into a list the reader takes whole. Non-streamed calls, https
upstreams, a URL with credentials or a query, upstreams reached through a proxy (``HTTP_PROXY``
and friends, as httpx would honour them) and traced gateways (tracing.py instruments the httpx
clients) keep httpx: ``WirePool.serves`` decides, once, at start.

What it keeps of httpx's behaviour, so that upstream.py maps failures exactly as before: it
raises httpx's own exception types (``ConnectError`` naming the URL, ``ConnectTimeout``,
``ReadError`` for a connection that broke, ``RemoteProtocolError`` for bytes that are not
HTTP/1.1 or a body cut before its end), and a ``WireResponse`` has the part of
``httpx.Response`` that upstream.py reads (``status_code``, ``is_success``, ``headers``,
``aiter_bytes()``, ``is_closed``, ``aclose()``).

Connections are kept alive and reused, last in first out: a response read to its end on a
connection the upstream keeps open goes back to the pool (at most ``max_connections`` idle);
anything else (a response closed before its end, a parser error, the upstream's
``Connection: close``) closes it. An idle connection the upstream closes is known dead from the
loop's ``connection_lost``, with no syscall to probe it (httpcore probes every pooled connection
per request, the cost ``UPSTREAM_POOL_SHARDS`` works around). A reused connection that the
upstream closed while the request was being written, before any byte of an answer, is retried
once on a new connection: the upstream never saw that request.

Flow control: reading pauses while ``MAX_BUFFERED_BYTES`` wait for the reader (a client slower
than the upstream), as a socket read only on demand would.

Caps: the response head is refused past ``MAX_HEAD_BYTES`` (h11's 16 KiB); the body's lines and
size are capped by the reader (upstream.py).

A sink (``WireResponse.divert``): while the reader waits for the body, a function may take what
arrives inside ``data_received``, in the loop's turn that brought it, instead of the reader's
task being woken for it (upstream.py's inline relay: a token relayed without a task switch).
The sink takes all of what waits, or nothing: declined, the bytes stay for the reader, in
order. An exception from it (a gateway bug) is raised in the reader by its next step.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import urllib.request
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httptools
import httpx

MAX_HEAD_BYTES = 16 * 1024
MAX_BUFFERED_BYTES = 256 * 1024


class _Connection(asyncio.Protocol):
    """One upstream connection and the exchange on it (one at a time): llhttp's callbacks fill
    the head, the body pieces not yet taken, and whether the message is complete."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.lost = False  # the connection is closed (by either side)
        self.eof = False  # the upstream closed its side
        self.error: httpx.HTTPError | None = None
        self.fault: Exception | None = None  # what the sink raised: the reader raises it
        self._waiter: asyncio.Future | None = None
        self._paused = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.framed = False  # Content-Length or Transfer-Encoding: the body does not end at EOF
        self.keep_alive = False  # read when the message completes: llhttp forgets it right after
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.received = 0  # bytes of this exchange's answer
        self.head_bytes = 0  # its header fields' (names, values, separators)
        self.sink: Callable[[bytes], bool] | None = None  # takes body bytes in data_received (module docstring)

    def begin(self) -> None:
        """A new exchange on this connection."""
        self._reset()
        self.parser = httptools.HttpResponseParser(self)

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self.parser is None:  # bytes nobody asked for, on an idle connection: unusable
            self.error = httpx.RemoteProtocolError("the upstream sent bytes with no request pending")
            self.transport.close()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = httpx.RemoteProtocolError("the upstream switched protocols")
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"the answer is not HTTP/1.1 ({exc})")
        if not self.head_done and self.received > MAX_HEAD_BYTES and self.error is None:
            self.error = httpx.RemoteProtocolError(f"the response head exceeds {MAX_HEAD_BYTES} bytes")
        if self.error is not None:
            self.parser = None
            self.transport.close()
        elif self.sink is not None and self.pieces and not self.complete and self._sunk():
            return  # taken: the reader waits on
        elif self.buffered > MAX_BUFFERED_BYTES and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _sunk(self) -> bool:
        """Offer what waits to the sink: True when it took it all."""
        pieces = self.pieces
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        try:
            if not self.sink(data):
                return False
        except Exception as exc:  # noqa: BLE001 - a gateway bug in the sink, raised by the reader instead
            self.fault, self.sink = exc, None
            self.pieces, self.buffered = [], 0
            return False  # the reader wakes, and raises it
        self.pieces, self.buffered = [], 0
        return True

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None and self.error is None:
            self.error = httpx.ReadError(str(exc) or type(exc).__name__)
        self._wake()

    # -- llhttp's callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        name = name.lower()
        if name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        if self.head_bytes > MAX_HEAD_BYTES:  # a whole head that came in one read
            self.error = httpx.RemoteProtocolError(f"the response head exceeds {MAX_HEAD_BYTES} bytes")
            return
        self.status = self.parser.get_status_code()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    # -- the reader's side
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until the loop delivers something (bytes, the end, a failure)."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """The body bytes that arrived since the last take (reading resumes if it was paused)."""
        pieces, self.pieces, self.buffered = self.pieces, [], 0
        if self._paused and not self.lost:
            self._paused = False
            self.transport.resume_reading()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    @property
    def ended(self) -> bool:
        """The upstream closed, or the connection broke."""
        return self.lost or self.eof or self.error is not None

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.ended

    def close(self) -> None:
        self.parser = None
        if self.transport is not None and not self.lost:
            self.transport.close()


class WireResponse:
    """The answer of one streamed call: what upstream.py reads of an ``httpx.Response``."""

    def __init__(self, pool: WirePool, conn: _Connection) -> None:
        self._pool, self._conn = pool, conn
        self.status_code = conn.status
        self.is_closed = False

    @functools.cached_property
    def headers(self) -> httpx.Headers:
        """Read only for a failed status (its back-off headers): built then, not per stream."""
        return httpx.Headers(self._conn.headers)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives: everything that came since the last step, in one piece."""
        conn = self._conn
        while True:
            if conn.fault is not None:
                fault, conn.fault = conn.fault, None
                raise fault
            if conn.pieces:
                yield conn.take()
                continue
            if conn.complete:
                return
            if conn.error is not None:
                raise conn.error
            if conn.ended:
                if conn.framed:
                    raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
                conn.complete = True  # a body that ends with the connection
                return
            if self.is_closed:
                return
            await conn.wait()

    def divert(self, sink: Callable[[bytes], bool] | None) -> None:
        """Set (or, with None, remove) the sink of the module docstring; set it only while the
        reader waits for the next bytes, and remove it before it handles what it was given."""
        self._conn.sink = sink

    async def aclose(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self._conn.sink = None
        self._pool.release(self._conn)


class WirePool:
    """Kept-alive HTTP/1.1 connections to one upstream, for its streamed calls (module docstring)."""

    def __init__(self, base_url: str, headers: dict[str, str], *, connect_timeout_s: float,
                 max_connections: int) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.base_url = base_url.rstrip("/")
        host = parts.netloc.rsplit("@", 1)[-1]
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._head_tail = (f"Host: {host}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
                           f"{fields}").encode("latin-1")
        self._connect_timeout_s = connect_timeout_s
        self._max = max_connections
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None  # made in the loop that runs the calls

    @staticmethod
    def serves(base_url: str) -> bool:
        """A plain-http upstream reached directly: no TLS, no credentials in the URL (httpx
        sends them as basic auth), no proxy (as httpx reads the environment:
        ``HTTP_PROXY``/``ALL_PROXY``, ``NO_PROXY``)."""
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.username is not None or parts.query:
            return False
        proxies = urllib.request.getproxies()
        if not (proxies.get("http") or proxies.get("all")):
            return True
        return bool(urllib.request.proxy_bypass(parts.hostname))

    async def post(self, path: str, body: bytes) -> WireResponse:
        """Send ``POST prefix+path`` with the JSON ``body``; return once the answer's head came.
        A slot (one of ``max_connections``) is held until the response is closed."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        await self._slots.acquire()
        try:
            wire = (b"POST " + (self.prefix + path).encode("latin-1") + b" HTTP/1.1\r\n" + self._head_tail
                    + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            while True:
                conn, reused = self._take_idle()
                if conn is None:
                    conn = await self._connect(path)
                conn.begin()
                conn.transport.write(wire)
                try:
                    await self._head(conn)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    conn.close()
                    if reused and conn.received == 0:
                        continue  # closed while idle, before it read the request: once more, fresh
                    raise
                except BaseException:
                    conn.close()
                    raise
                return WireResponse(self, conn)
        except BaseException:
            self._slots.release()
            raise

    def _take_idle(self) -> tuple[_Connection | None, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.ended:
                return conn, True
        return None, False

    async def _connect(self, path: str) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {self._connect_timeout_s:g} s") from None
        except OSError as exc:
            request = httpx.Request("POST", self.base_url + path)
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        return conn

    @staticmethod
    async def _head(conn: _Connection) -> None:
        while not conn.head_done:
            if conn.error is not None:
                raise conn.error
            if conn.ended:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            await conn.wait()

    def release(self, conn: _Connection) -> None:
        """A response closed: its connection back to the pool when the answer was read whole
        and the upstream keeps it open, else closed."""
        if conn.reusable() and len(self._idle) < self._max:
            conn.parser = None
            self._idle.append(conn)
        else:
            conn.close()
        if self._slots is not None:
            self._slots.release()

    def idle_connections(self) -> int:
        """Connections waiting in the pool, alive (for tests and /metrics-minded readers)."""
        return sum(not conn.ended for conn in self._idle)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
