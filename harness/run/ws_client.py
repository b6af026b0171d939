"""The WebSocket transport: Responses API WebSocket mode, producing ``Exchange`` records.

WebSocket mode (the protocol: OpenAI's WebSocket mode guide, the SDK's ``responses.connect()``):
the client upgrades ``ws://HOST:PORT/v1/responses`` (``Authorization: Bearer KEY`` on the
upgrade), then each **turn** is one ``response.create`` text frame holding the fields of a
``POST /v1/responses`` body, answered by the events HTTP streaming would send, one JSON object
per text frame, until the terminal event (``response.completed`` / ``.incomplete`` /
``.failed``), or by one ``error`` event when the request is refused before any response is
created. One socket carries several turns, one at a time.

Nothing here judges anything (harness/core/verdict.py ``judge_ws_turn`` does); it records each turn
as an ``Exchange`` with ``transport="ws"``: the frame sent, every frame received with its
arrival time (text frames as ``str``, binary ones as ``bytes``), and how the turn ended. The
same discipline as harness/run/client.py (DESIGN.md principle 8), nothing unbounded:

* **A deadline for the whole turn** (the upgrade included when the turn opens the socket): a
  watchdog timer shuts the socket down at the deadline, which wakes a read, a write or a
  handshake blocked on a silent server. Reads are also bounded by the time left.
* **A read timeout between frames** (silence), never longer than the deadline.
* **An open timeout**: the TCP connect and the upgrade handshake each within their own timeout
  (and the deadline).
* **A cap on one frame** (``max_frame_bytes``, websockets' ``max_size``): a larger message is
  refused by the library as it arrives (close code 1009), never buffered whole.
* **No compression**: the upgrade offers no permessage-deflate (``compression=None``), so the
  frame cap holds on the bytes received and a server's deflate bomb cannot be inflated here
  (the same decision as the HTTP transport's ``Accept-Encoding: identity``).
* **A cap on the turn** (``max_turn_bytes``): frames are recorded up to that many bytes; a
  server streaming forever costs at most the cap.
* **The end of a turn**: the terminal event, or an ``error`` event that arrives before any
  ``response.created`` (the request was refused; no response exists). Frames already on their
  way within ``TRAILING_GRACE_S`` after it (a ``[DONE]`` an SSE habit adds, a stray event) are
  recorded on the same turn so the verdict can see them; later ones would land on the next turn.

A turn cut at a cap or the deadline leaves a response in flight on that socket, so the socket is
closed (its next turn would only read the old response's leftovers); so is one the server closed.
A later turn on a closed socket is recorded with the reason and sends nothing.

A refused upgrade (an HTTP status other than 101: a server with no WebSocket support answers
404 or 403) is recorded with that status, its headers and its body (``Exchange.chunks``), so the
verdict can tell a clean refusal (``unsupported``) from a crash.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
)
from websockets.sync.client import ClientConnection, connect

from harness import __version__
from harness.core.stream import TERMINAL_EVENTS
from harness.core.transcript import Exchange
from harness.run.client import (
    CONNECT_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_READ_TIMEOUT_S,
    MAX_BODY_BYTES,
    TRANSPORT_MAX_FRAME_BYTES,
    Watchdog,
)
from harness.run.scenario import DEFAULT_SOCKET

# The upgrade handshake after the TCP connect: one round trip to a live server.
OPEN_TIMEOUT_S = 10.0
# The closing handshake when the harness closes a socket (websockets' close_timeout): a server
# that never answers the close frame costs at most this.
CLOSE_TIMEOUT_S = 2.0
# After a turn's last event, frames already in flight are still read for this long and recorded
# on the turn (a `[DONE]` frame sent right behind response.completed). On loopback and on
# OpenAI's service such a frame would travel with the terminal event; 50 ms is cheap per turn.
TRAILING_GRACE_S = 0.05
# The largest recorded OpenAI stream is ~1 MB; one turn is capped like one HTTP body.
MAX_TURN_BYTES = MAX_BODY_BYTES
# websockets' close code for a message over max_size (RFC 6455 §7.4.1: 1009 message too big).
CLOSE_TOO_BIG = 1009


def ws_url(base_url: str, path: str = "/responses") -> str:
    """``http://h:p/v1`` -> ``ws://h:p/v1/responses`` (https -> wss)."""
    parts = urlsplit(base_url.rstrip("/") + path)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


@dataclass(slots=True)
class _Socket:
    conn: ClientConnection | None
    raw: socket.socket | None
    closed: str | None = None  # why it can carry no more turns


class WebSocketTransport:
    """The sockets of one scenario (by name), each opened on its first turn.

    ``turn()`` runs one response.create on a named socket and returns its ``Exchange``;
    ``close()`` (or the context manager) closes every socket, each within CLOSE_TIMEOUT_S."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 deadline_s: float = DEFAULT_DEADLINE_S,
                 read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
                 open_timeout_s: float = OPEN_TIMEOUT_S,
                 max_frame_bytes: int = TRANSPORT_MAX_FRAME_BYTES,
                 max_turn_bytes: int = MAX_TURN_BYTES,
                 trailing_grace_s: float = TRAILING_GRACE_S) -> None:
        self.url = ws_url(base_url)
        self.api_key = api_key
        self.deadline_s = deadline_s
        self.read_timeout_s = read_timeout_s
        self.open_timeout_s = open_timeout_s
        self.max_frame_bytes = max_frame_bytes
        self.max_turn_bytes = max_turn_bytes
        self.trailing_grace_s = trailing_grace_s
        self._sockets: dict[str, _Socket] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> "WebSocketTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets.values():
                _close(sock)
            self._sockets.clear()

    def _headers(self) -> dict[str, str]:
        hdrs = {"user-agent": f"respcheck/{__version__}"}
        if self.api_key:
            hdrs["authorization"] = f"Bearer {self.api_key}"
        return hdrs

    def turn(self, step: str, frame: str, *, socket_name: str = DEFAULT_SOCKET,
             deadline_s: float | None = None, max_turn_bytes: int | None = None) -> Exchange:
        """Send ``frame`` (the response.create JSON text) on socket ``socket_name`` and read
        until the turn ends; the socket is opened first if this is its first turn.
        ``max_turn_bytes`` lowers the turn's cap for this turn only."""
        ex = Exchange(step, "WS", self.url, self._headers(), frame.encode("utf-8"),
                      transport="ws", socket=socket_name)
        deadline = deadline_s if deadline_s is not None else self.deadline_s
        with self._lock:
            start = time.monotonic()
            dog = Watchdog()
            dog.at(start + deadline, "deadline")
            try:
                self._turn(ex, frame, socket_name, start, deadline, dog,
                           min(max_turn_bytes or self.max_turn_bytes, self.max_turn_bytes))
            finally:
                dog.cancel()
                ex.t_end = time.monotonic() - start
        return ex

    # -- one turn ----------------------------------------------------------------------------
    def _turn(self, ex: Exchange, frame: str, name: str, start: float, deadline: float,
              dog: Watchdog, cap: int) -> None:
        sock = self._sockets.get(name)
        if sock is None:
            sock = self._open(ex, start, deadline, dog)
            if sock is None:
                return
            self._sockets[name] = sock
        else:
            ex.status = 101  # the socket's upgrade (recorded on the turn that opened it)
        if sock.closed is not None:
            ex.error = f"the socket {name!r} is closed: {sock.closed}; the turn was not sent"
            return
        dog.arm_socket(sock.raw)
        conn = sock.conn
        assert conn is not None
        try:
            conn.send(frame)
            self._receive(ex, sock, start, deadline, cap)
        except ConnectionClosed as exc:
            self._closed(ex, sock, exc, start, deadline, dog)
        except OSError as exc:
            ex.error = (_deadline_message(deadline, ex) if dog.fired
                        else f"{type(exc).__name__}: {exc}")
            ex.cut = True
            sock.closed = ex.error
            _close(sock)

    def _open(self, ex: Exchange, start: float, deadline: float,
              dog: Watchdog) -> _Socket | None:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        raw: socket.socket | None = None
        try:
            raw = socket.create_connection((parts.hostname, port),
                                           timeout=min(CONNECT_TIMEOUT_S, deadline))
            dog.arm_socket(raw)
            left = max(0.001, start + deadline - time.monotonic())
            conn = connect(self.url, sock=raw, additional_headers=self._headers(),
                           user_agent_header=None, proxy=None,
                           open_timeout=min(self.open_timeout_s, left),
                           close_timeout=CLOSE_TIMEOUT_S, ping_interval=None,
                           max_size=self.max_frame_bytes, compression=None)
            # Entered as a context manager (websockets 17 warns otherwise); _close() exits it.
            conn.__enter__()
        except InvalidStatus as exc:
            resp = exc.response
            ex.t_headers = time.monotonic() - start
            ex.status = resp.status_code
            ex.response_headers = {k.lower(): v for k, v in resp.headers.raw_items()}
            if resp.body:
                ex.chunks.append((ex.t_headers, bytes(resp.body[:self.max_turn_bytes])))
            ex.error = f"the server refused the WebSocket upgrade: HTTP {resp.status_code}"
            _close_raw(raw)
            return None
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            if dog.fired:
                ex.error = f"the WebSocket upgrade did not complete within the {deadline:g} s deadline"
            elif isinstance(exc, TimeoutError | socket.timeout):
                ex.error = (f"timed out opening the WebSocket "
                            f"({min(self.open_timeout_s, CONNECT_TIMEOUT_S, deadline):g} s)")
            else:
                ex.error = f"cannot open the WebSocket: {type(exc).__name__}: {exc}"
            _close_raw(raw)
            return None
        ex.t_headers = time.monotonic() - start
        resp = conn.response
        ex.status = resp.status_code if resp is not None else 101
        if resp is not None:
            ex.response_headers = {k.lower(): v for k, v in resp.headers.raw_items()}
        return _Socket(conn, raw)

    def _receive(self, ex: Exchange, sock: _Socket, start: float, deadline: float,
                 cap: int) -> None:
        conn = sock.conn
        assert conn is not None
        size = 0
        created = False
        ended_at: float | None = None  # monotonic time the turn's last event arrived
        while True:
            now = time.monotonic()
            if ended_at is not None:
                wait = ended_at + self.trailing_grace_s - now
                if wait <= 0:
                    return
            else:
                left = start + deadline - now
                if left <= 0:
                    self._cut(ex, sock, _deadline_message(deadline, ex))
                    return
                wait = min(self.read_timeout_s, left)
            try:
                msg = conn.recv(timeout=wait)
            except TimeoutError:
                if ended_at is not None:
                    return  # nothing trailed the last event: the normal end of a turn
                elapsed = time.monotonic() - start
                if elapsed >= deadline - 0.01:
                    self._cut(ex, sock, _deadline_message(deadline, ex))
                else:
                    self._cut(ex, sock, f"timed out: no frame for {wait:.1f} s, {elapsed:.1f} s "
                              f"into the turn ({len(ex.frames)} frames, no terminal event)")
                return
            except ConnectionClosed as exc:
                if ended_at is not None:
                    # The turn was over; the socket closed after it (rule 1's 401 does so).
                    sock.closed = _close_words(exc) + " after the previous turn"
                    ex.ws_close = _close_record(exc)
                    _close(sock)
                    return
                raise
            t = time.monotonic() - start
            n = len(msg.encode("utf-8")) if isinstance(msg, str) else len(msg)
            size += n
            if size > cap:
                keep = max(0, n - (size - cap))
                ex.frames.append((t, msg[:keep]))
                self._cut(ex, sock, f"the turn exceeded the {cap}-byte cap after "
                          f"{t:.1f} s ({len(ex.frames)} frames, no terminal event)")
                return
            ex.frames.append((t, msg))
            if ended_at is not None:
                continue
            etype = _event_type(msg)
            if etype == "response.created":
                created = True
            if etype in TERMINAL_EVENTS or (etype == "error" and not created):
                ended_at = time.monotonic()

    def _closed(self, ex: Exchange, sock: _Socket, exc: ConnectionClosed, start: float,
                deadline: float, dog: Watchdog) -> None:
        ex.cut = True
        ex.ws_close = _close_record(exc)
        if exc.sent is not None and exc.sent.code == CLOSE_TOO_BIG \
                or isinstance(exc.__cause__, PayloadTooBig):
            # First: a server flooding a too-big frame never answers the close frame, so the
            # closing handshake can outlast the deadline; the frame cap is still the reason.
            ex.error = (f"a frame of more than {self.max_frame_bytes} bytes exceeds the frame cap "
                        f"(after {len(ex.frames)} frames)")
            ex.ws_close = None  # the harness closed it, not the server
        elif dog.fired:
            ex.error = _deadline_message(deadline, ex)
        else:
            ex.error = (f"{_close_words(exc)} before the turn's terminal event "
                        f"({len(ex.frames)} frames)")
            ex.cut = False  # the server ended it: what came is all there is
        sock.closed = ex.error
        _close(sock)

    @staticmethod
    def _cut(ex: Exchange, sock: _Socket, message: str) -> None:
        ex.error = message
        ex.cut = True
        sock.closed = f"the turn {ex.step!r} was cut ({message})"
        _close(sock)


def _event_type(msg: str | bytes) -> Any:
    if not isinstance(msg, str):
        return None
    try:
        event = orjson.loads(msg)
    except ValueError:
        return None
    return event.get("type") if isinstance(event, dict) else None


def _deadline_message(deadline: float, ex: Exchange) -> str:
    return (f"no terminal event within the {deadline:g} s deadline "
            f"({len(ex.frames)} frames)")


def _close_record(exc: ConnectionClosed) -> dict[str, Any] | None:
    rcvd = exc.rcvd
    if rcvd is None:
        return None
    return {"code": rcvd.code, "reason": rcvd.reason}


def _close_words(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is None:
        return "the connection was lost (no close frame)"
    reason = f" {rcvd.reason!r}" if rcvd.reason else ""
    return f"the server closed the socket (code {rcvd.code}{reason})"


def _close(sock: _Socket) -> None:
    conn, sock.conn = sock.conn, None
    if conn is not None:
        try:
            conn.close()  # bounded by close_timeout
        except Exception:  # noqa: BLE001 - a socket being torn down may fail any way
            pass
    _close_raw(sock.raw)
    if sock.closed is None:
        sock.closed = "closed by the harness"


def _close_raw(raw: socket.socket | None) -> None:
    if raw is not None:
        try:
            raw.close()
        except OSError:
            pass
