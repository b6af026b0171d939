"""A small blocking HTTP/1.1 client that hands body bytes over the moment they arrive.

Why not ``requests``/``HttpUser``: a load generator measuring time-to-first-token must see each
SSE event when its bytes come off the socket. Here every ``recv()`` goes straight through
llhttp (``httptools``, which undoes chunked transfer-encoding, nothing more) to the observer with
its ``perf_counter()`` reading; nothing buffers by line or by size. The request is written by
hand (one POST, its head and body in one ``sendall``). llhttp replaced h11 here (issue 20): h11,
pure Python, cost as much CPU per event as all the rest of the load generator. Under locust the socket module
is gevent's (monkey-patched): there a response is read inside gevent's hub, on the socket's
readiness, and the user's greenlet waits once per exchange, not once per read
(``_read_when_ready``); anywhere else, by one blocking ``recv`` after another.

One ``Connection`` per user, kept alive across requests (as a real client pool does); a server
that closes it gets a fresh one on the next request.

Every request is bounded like the conformance run's (harness/run/client.py): a whole-exchange
deadline (``deadline_s``, the error ``deadline``), a silence between reads (``idle_s``,
``idle_timeout``; under gevent one timer per exchange keeps both, ``_Watch``), a cap on the
response head (``MAX_HEAD_BYTES``, 16 KiB as h11's was), and a cap on the body
(``MAX_BODY_BYTES``, the harness's: a body past it ends the exchange with ``body_cap``), so a
server that floods costs the load generator at most the cap per user. One event is capped by the
observer's SSE decoder (``loadtests/observe.py`` ``MAX_FRAME_BYTES``), well inside the body cap.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

from harness.run.client import MAX_BODY_BYTES
from loadtests.observe import ExchangeObserver

# Bytes asked of one recv(). An SSE event of a text delta is ~150-300 bytes; 64 KiB lets a burst
# come through in one call without ever waiting for it to fill (recv returns what is there).
RECV_BYTES = 64 * 1024


# The response head: status line and header fields, 16 KiB as h11 (the former parser here) capped it.
MAX_HEAD_BYTES = 16 * 1024


class _Response:
    """llhttp's callbacks for one response: its header fields, body pieces since the last read,
    and whether its head / the whole message are complete."""

    __slots__ = ("complete", "content_type", "framed", "head_done", "keep_alive", "parser", "pieces")

    def __init__(self) -> None:
        self.content_type: str | None = None
        self.framed = False  # Content-Length or Transfer-Encoding: the body does not end at EOF
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None
        self.pieces: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # asked now: once feed_data returns, llhttp has reset and says False for every message
        self.keep_alive = self.parser.should_keep_alive()


class _Expired(Exception):
    """Thrown by ``_Watch`` into the greenlet waiting on the socket: ``idle_timeout`` or ``deadline``."""


class _Watch:
    """An exchange's two deadlines under gevent, on one timer (issue 20). A gevent socket with a
    timeout arms one around every wait (a ``Timeout`` made, its timer started and stopped, for
    each event read: 8 % of the load generator's CPU at 256 streams); with this the socket has
    none, each read only stores its time, and the timer, when it fires, re-arms for the nearest
    deadline or, past it, throws ``_Expired`` into the greenlet that waits (what gevent's own
    ``Timeout`` does). An un-patched socket keeps ``settimeout`` per read."""

    __slots__ = ("_deadline", "_greenlet", "_idle_s", "_loop", "_timer", "last")

    def __init__(self, idle_s: float, deadline: float) -> None:
        from gevent import get_hub, getcurrent  # only where the socket is gevent's

        self._loop, self._greenlet = get_hub().loop, getcurrent()
        self._idle_s, self._deadline = idle_s, deadline
        self.last = time.perf_counter()  # when the last read ended (the reader sets it)
        self._timer = None
        self._arm(self._due()[0] - self.last)

    def _due(self) -> tuple[float, str]:
        idle = self.last + self._idle_s
        return (idle, "idle_timeout") if idle < self._deadline else (self._deadline, "deadline")

    def _arm(self, after: float) -> None:
        self._timer = self._loop.timer(max(after, 0.0))
        self._timer.start(self._fire)

    def _fire(self) -> None:
        self._timer.close()
        due, what = self._due()
        now = time.perf_counter()
        if now < due:
            self._arm(due - now)
            return
        self._timer = None
        self._greenlet.throw(_Expired(what))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None


class _Exchange:
    """One response as it is read: llhttp, the caps on its head and body, and the observer it
    feeds. ``take(data, t)`` is called with each read (``b""`` at EOF) and says whether the
    exchange is over; ``error`` then says why, or is None for a whole answer. Both readers below
    (a blocking loop, and gevent's readiness callback) drive the same one."""

    __slots__ = ("body_bytes", "error", "head_bytes", "obs", "parser", "response", "started")

    def __init__(self, obs: ExchangeObserver) -> None:
        self.obs = obs
        self.response = _Response()
        self.parser = self.response.parser = httptools.HttpResponseParser(self.response)
        self.error: str | None = None
        self.body_bytes = self.head_bytes = 0
        self.started = False

    def take(self, data: bytes, t: float) -> bool:
        response = self.response
        if not data:  # EOF
            if not self.started:
                self.error = "closed"
            elif response.framed:
                self.error = "protocol: peer closed connection without sending complete message body"[:80]
            else:  # a body that ends with the connection
                response.complete = True
            return True
        if not response.head_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = "protocol: unexpected upgrade"
            return True
        except httptools.HttpParserError as exc:
            self.error = f"protocol: {exc}"[:80]
            return True
        if not response.head_done:
            if self.head_bytes > MAX_HEAD_BYTES:
                self.error = f"protocol: the response head exceeds {MAX_HEAD_BYTES} bytes"
                return True
            return False
        if not self.started:
            self.started = True
            self.obs.response_started(self.parser.get_status_code(), response.content_type, t)
        if response.pieces:
            pieces, response.pieces = response.pieces, []
            feed = self.obs.feed
            for piece in pieces:
                self.body_bytes += len(piece)
                if self.body_bytes > MAX_BODY_BYTES:
                    self.error = "body_cap"
                    return True
                feed(piece, t)
        return response.complete


class Connection:
    def __init__(self, base_url: str, *, connect_timeout: float = 10.0, api_key: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        self.connect_timeout = connect_timeout
        self.api_key = api_key
        self._sock: socket.socket | None = None
        self._reusable = False  # the last exchange ended whole on a connection that stays open

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._reusable = False

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self._sock = sock

    def post(self, path: str, body: bytes,
             make_observer: Callable[[float, float], ExchangeObserver], *,
             deadline_s: float = 60.0, idle_s: float = 30.0) -> ExchangeObserver:
        """POST ``body`` (JSON) to ``prefix + path``; feed the answer to the observer
        ``make_observer(t_send, t_send_wall)`` builds; close it and return it. Never raises for
        network trouble: that becomes the sample's error."""
        if self._sock is not None and not self._reusable:
            self.close()
        self._reusable = False
        if self._sock is None:
            try:
                self._connect()
            except OSError as exc:
                t = time.perf_counter()
                obs = make_observer(t, time.time())
                obs.close(t, error=f"connect: {exc.__class__.__name__}")
                return obs
        sock = self._sock
        assert sock is not None
        head = (f"POST {self.prefix + path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                "Content-Type: application/json\r\nAccept: text/event-stream, application/json\r\n"
                f"Content-Length: {len(body)}\r\n")
        if self.api_key:
            head += f"Authorization: Bearer {self.api_key}\r\n"
        wire = (head + "\r\n").encode("latin-1") + body
        t_send = time.perf_counter()
        obs = make_observer(t_send, time.time())
        exchange = _Exchange(obs)
        deadline = t_send + deadline_s
        try:
            gevent_socket = type(sock).__module__.startswith("gevent")  # locust's monkey-patched socket
            if gevent_socket:
                sock.settimeout(None)
            sock.sendall(wire)
            if gevent_socket and not self.tls:
                _read_when_ready(sock, exchange, deadline, idle_s)
            else:
                _read_in_turn(sock, exchange, deadline, idle_s, gevent_socket)
        except _Expired as exc:
            exchange.error = str(exc)
        except TimeoutError:  # socket.timeout
            exchange.error = "idle_timeout" if time.perf_counter() < deadline else "deadline"
        except OSError as exc:
            exchange.error = f"transport: {exc.__class__.__name__}"
        t_end = time.perf_counter()
        response = exchange.response
        if exchange.error is None and response.complete and response.framed and response.keep_alive:
            self._reusable = True
        else:
            self.close()
        obs.close(t_end, error=exchange.error)
        return obs


def _read_in_turn(sock: socket.socket, exchange: _Exchange, deadline: float, idle_s: float,
                  watched: bool) -> None:
    """Read until the exchange is over, one blocking ``recv`` after another: a socket of its own
    (the CLI's probes, the tests) with a timeout set before each read; a gevent TLS socket with
    ``_Watch``'s one timer (its raw socket holds ciphertext, so ``_read_when_ready`` cannot read it)."""
    watch = _Watch(idle_s, deadline) if watched else None
    try:
        while True:
            if watch is None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    exchange.error = "deadline"
                    return
                sock.settimeout(min(idle_s, left))
            data = sock.recv(RECV_BYTES)
            t = time.perf_counter()
            if watch is not None:
                watch.last = t
            if exchange.take(data, t):
                return
    finally:
        if watch is not None:
            watch.close()


def _read_when_ready(sock: socket.socket, exchange: _Exchange, deadline: float, idle_s: float) -> None:
    """Read until the exchange is over inside gevent's hub (issue 20): a readiness watcher on the
    socket calls back with each read, which goes through llhttp to the observer right there, and
    the user's greenlet is woken once, when the exchange ends. A blocking ``recv`` under gevent
    costs, for every event, a failed ``recv`` (EWOULDBLOCK, raised as an exception), a switch to
    the hub, and a switch back: a third of the load generator's CPU at 256 streams. The raw
    non-blocking socket inside gevent's (``_sock``, which gevent keeps for code that must not
    wait through the hub) is read only when the loop says it is readable. ``_Watch``'s timer
    keeps both deadlines; anything the callback raises (a transport error, a bug in the observer)
    is thrown into the waiting greenlet, as a blocking read would have raised it there."""
    from gevent import get_hub
    from gevent.hub import Waiter

    hub = get_hub()
    waiter = Waiter(hub)
    recv = sock._sock.recv
    ready = hub.loop.io(sock.fileno(), 1)  # 1: readable
    watch = _Watch(idle_s, deadline)
    clock, take = time.perf_counter, exchange.take

    def on_ready() -> None:
        try:
            data = recv(RECV_BYTES)
        except BlockingIOError:
            return  # woken with nothing to read: wait on
        except BaseException:  # noqa: BLE001 - raised in the reader's greenlet instead
            ready.stop()
            waiter.throw(*sys.exc_info())
            return
        t = watch.last = clock()
        try:
            over = take(data, t)
        except BaseException:  # noqa: BLE001 - as above
            ready.stop()
            waiter.throw(*sys.exc_info())
            return
        if over:
            ready.stop()
            waiter.switch(None)

    ready.start(on_ready)
    try:
        waiter.get()
    finally:
        ready.stop()
        ready.close()
        watch.close()
