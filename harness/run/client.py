"""The transport: httpx, producing ``Exchange`` records, with hard deadlines and size caps.

Nothing here judges anything; it records what happened. Every request is bounded, so a server
that stalls or floods gets a clear failure instead of a hung CI job (DESIGN.md principle 8):

* **A deadline for the whole exchange**, honoured to within a fraction of a second: a
  watchdog timer shuts the exchange's socket down at the deadline, which wakes a read blocked
  on a silent server. A new connection's socket is known from its connect (httpcore's ``trace``
  extension); a reused keep-alive connection is the previous response's, so that socket is
  armed too (shutting down an idle pooled connection is harmless: the pool discards it), and a
  server trickling its headers a byte at a time is cut at the deadline. Reads that do return
  are also checked against it. Decision: a body that has not ended by the deadline is cut off
  there, never read past it (before, a server falling silent just before the deadline was
  waited on for one more read timeout: up to twice the deadline).
* **A read timeout between bytes** (silence), never longer than the deadline, for a request
  that asks to stream (``"stream": true`` in its body, or ``stream=true`` in its query).
  Decision: a request that does not ask to stream is bounded by the deadline alone: its server
  has nothing to send until its whole answer is made, so the time to its head is the answer's
  time, which is what the deadline bounds (a long answer from a CPU-served model took 30 s:
  cut by the 30 s read timeout inside the 60 s deadline, it was judged unreachable).
* **A cap on the body** (``max_body_bytes``): exactly that many bytes are recorded, no more, so
  a server streaming forever costs at most the cap in memory.
* **A cap on one event** (``max_frame_bytes``): an event stream is framed as it arrives (the
  same sans-IO ``SSEDecoder`` the verdict uses, with a throwaway log); an event growing past the
  cap without its blank line ends the read at once. The verdict would fail it anyway, and
  reading on to the body cap (a 100 MB frame) would only cost time and memory.
* **The end of an event stream**: once the terminal event (``response.completed``,
  ``response.incomplete`` or ``response.failed``) has arrived, the server has said everything;
  the transport keeps reading for ``close_grace_s`` more (so a ``data: [DONE]`` the profile
  expects, or a stray frame after the terminal event, is still recorded and judged), and if the
  body has not ended by then it stops reading and records how long the body stayed open
  (``Exchange.open_after_terminal_s``; the verdict makes it a ``transport.closes_after_terminal``
  failure).
  A finished body on a kept-alive TCP connection is not "open": HTTP/1.1 keep-alive is fine,
  only a body that never ends (no final chunk, no close) leaves a client waiting.

* **No decompression**: requests say ``Accept-Encoding: identity`` and the raw bytes are read
  (``iter_raw``), so the caps hold on the bytes held in memory. A server that compresses anyway
  (a 1 MB gzip body can decode to 1 GB) is cut at its headers with a failure naming its
  ``Content-Encoding``; nothing is ever decoded. Decision: judging the bytes on the wire is what
  a conformance tool is for, and a decoder with a cap on its output would be a second cap to
  keep right.

Every request the harness makes goes through here, the preflight's ``GET /models`` included
(``get_models``); the WebSocket transport (harness/run/ws_client.py) holds its turns to the same
deadline with the same ``Watchdog``.

Error messages (``Exchange.error``) say what happened in words a CI log reader understands:
"no response headers within 2 s", "stream exceeded the 33554432-byte cap", "no terminal event
within the 2 s deadline", "an event of more than N bytes exceeds the frame cap", "connection
refused".

A ``Transport`` runs one request at a time (the watchdog shuts down the sockets this request
may be using); concurrent callers are serialized by a lock.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from harness.core.findings import FindingLog
from harness.core.sse import Frame, SSEDecoder
from harness.core.stream import TERMINAL_EVENTS
from harness.core.transcript import Exchange

# Whole-exchange deadline. The slowest legitimate scenario is a bounded generation
# (max_output_tokens <= a few hundred) from a CPU-served model: ~10 s on vLLM-CPU here.
DEFAULT_DEADLINE_S = 60.0
# Silence allowed between two reads. OpenAI's service keeps streams alive with events well
# under this; a proxy's default idle timeout is 60 s (nginx proxy_read_timeout).
DEFAULT_READ_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# Largest body recorded. The largest recorded OpenAI stream (compaction, 825 events) is ~1 MB;
# 8 MiB is eight times that. Judging a body costs about 8x its size at worst (a flood of tiny
# events, each parsed to a dict), so this cap is what keeps one exchange's judging within the
# memory budget (README, "Budgets"); it was 32 MiB, whose judging alone took ~270 MB.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Largest event the transport reads on: half the body cap, so a server sending one huge event
# is told so ("exceeds the frame cap") rather than "exceeded the body cap". OpenAI's largest
# recorded event is ~60 KB.
TRANSPORT_MAX_FRAME_BYTES = MAX_BODY_BYTES // 2
# How long the body may stay open after the terminal event. OpenAI's service ends the body
# with the terminal event's frame (same TCP segment in the recordings); a proxy in between adds
# milliseconds. One second is generous and keeps a misbehaving server from costing much.
CLOSE_GRACE_S = 1.0
# The largest GET /models answer read by the preflight: OpenAI's list of ~100 models is ~10 KB.
PREFLIGHT_MAX_BODY_BYTES = 1024 * 1024
# Asked of every server: the bytes on the wire, never compressed (see "No decompression").
ACCEPT_ENCODING = "identity"


class Transport:
    """One reusable httpx client bound to a base URL (``http://host:port/v1``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 deadline_s: float = DEFAULT_DEADLINE_S,
                 read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
                 max_body_bytes: int = MAX_BODY_BYTES,
                 max_frame_bytes: int = TRANSPORT_MAX_FRAME_BYTES,
                 close_grace_s: float = CLOSE_GRACE_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.deadline_s = deadline_s
        self.read_timeout_s = read_timeout_s
        self.max_body_bytes = max_body_bytes
        self.max_frame_bytes = max_frame_bytes
        self.close_grace_s = close_grace_s
        self._lock = threading.Lock()
        self._last_stream: Any = None  # the previous response's connection (maybe reused)
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,  # never route loopback tests through a proxy from the environment
        )

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(self, step: str, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, deadline_s: float | None = None,
                max_body_bytes: int | None = None) -> Exchange:
        """One request, held to ``deadline_s`` (default: the transport's); ``max_body_bytes``
        lowers the body cap for this request only."""
        url = self.base_url + path
        hdrs: dict[str, str] = {"accept": "application/json, text/event-stream",
                                "accept-encoding": ACCEPT_ENCODING}
        if self.api_key:
            hdrs["authorization"] = f"Bearer {self.api_key}"
        hdrs.update(headers or {})
        ex = Exchange(step, method, url, hdrs, body or b"")
        deadline = deadline_s if deadline_s is not None else self.deadline_s
        with self._lock:
            self._exchange(ex, body, hdrs, deadline,
                           min(max_body_bytes or self.max_body_bytes, self.max_body_bytes))
        return ex

    def _exchange(self, ex: Exchange, body: bytes | None, hdrs: dict[str, str],
                  deadline: float, cap: int) -> None:
        # Until the headers arrive, and between reads after, the read timeout (= the deadline at
        # most) bounds the wait; for a request that does not ask to stream, the deadline alone
        # (module docstring). Connect and write have their own timeouts, within the deadline.
        read_timeout = min(self.read_timeout_s, deadline) if _asks_to_stream(ex.url, body) else deadline
        timeout = httpx.Timeout(read_timeout,
                                connect=min(CONNECT_TIMEOUT_S, deadline), write=deadline,
                                pool=deadline)
        start = time.monotonic()
        dog = Watchdog()
        dog.arm(self._last_stream)
        dog.at(start + deadline, "deadline")

        def trace(event: str, info: dict[str, Any]) -> None:
            # httpcore's "trace" extension: a new connection's socket is known from here on,
            # so the watchdog can cut even a server that trickles its headers.
            if event == "connection.connect_tcp.complete":
                dog.arm(info.get("return_value"))

        watch: _StreamWatch | None = None
        size = 0
        ended = False  # the body ended on its own (final chunk, Content-Length, or close)
        cut = False  # we stopped reading before its end: a cap, the deadline, a silence
        try:
            with self._client.stream(ex.method, ex.url, content=body, headers=hdrs,
                                     timeout=timeout, extensions={"trace": trace}) as resp:
                ex.t_headers = time.monotonic() - start
                ex.status = resp.status_code
                ex.response_headers = {k.lower(): v for k, v in resp.headers.items()}
                self._last_stream = resp.extensions.get("network_stream")
                dog.arm(self._last_stream)
                coding = ex.response_headers.get("content-encoding", "identity").strip().lower()
                if coding not in ("", ACCEPT_ENCODING):
                    raise _Refused(f"the body is compressed (Content-Encoding: {coding}) although "
                                   f"the request said Accept-Encoding: {ACCEPT_ENCODING}; it was "
                                   "not read (respcheck judges the bytes on the wire)")
                ctype = ex.response_headers.get("content-type", "")
                if ctype.split(";")[0].strip().lower() == "text/event-stream":
                    watch = _StreamWatch(self.max_frame_bytes)
                for data in resp.iter_raw():
                    now = time.monotonic() - start
                    if size + len(data) > cap:
                        ex.chunks.append((now, data[:cap - size]))
                        ex.error = (f"{'stream' if watch else 'body'} exceeded the {cap}-byte "
                                    f"cap after {now:.1f} s" + _progress(watch))
                        cut = True
                        break
                    ex.chunks.append((now, data))
                    size += len(data)
                    if watch is not None:
                        watch.feed(data)
                        if watch.overflow:
                            ex.error = (f"an event of more than {self.max_frame_bytes} bytes "
                                        "exceeds the frame cap (no blank line ended it)")
                            cut = True
                            break
                        if watch.terminal_at is None and watch.terminal is not None:
                            watch.terminal_at = now
                            dog.at(min(start + now + self.close_grace_s, start + deadline),
                                   "grace")
                    if now > deadline:
                        if watch is None or watch.terminal_at is None:
                            ex.error = _deadline_message(deadline, watch)
                        cut = True
                        break  # (after the terminal event: the body stayed open too long)
                else:
                    ended = True
        except _Refused as exc:
            ex.error, cut = str(exc), True
        except httpx.TimeoutException as exc:
            if not dog.fired and not (watch is not None and watch.terminal_at is not None):
                ex.error = _timeout_message(exc, ex, time.monotonic() - start, deadline, read_timeout, watch)
                cut = ex.status is not None  # a silence in the body: its end was not seen
        except httpx.HTTPError as exc:
            if not dog.fired:
                ex.error = _error_message(exc, ex)
        finally:
            dog.cancel()
        ex.t_end = time.monotonic() - start
        if ex.error is not None:
            ex.cut = cut or (dog.fired and ex.status is not None)
            return
        if watch is not None and watch.terminal_at is not None:
            if dog.fired or not ended:
                # The server said everything, then kept the body open: we stopped reading.
                ex.open_after_terminal_s = round(ex.t_end - watch.terminal_at, 3)
        elif dog.fired:
            ex.error = (f"no response headers within {deadline:g} s (the deadline)"
                        if ex.status is None else _deadline_message(deadline, watch))
            ex.cut = ex.status is not None



def get_models(base_url: str, api_key: str | None, deadline_s: float) -> Exchange:
    """The preflight: ``GET /models`` through a guarded transport of its own, held to
    ``deadline_s`` and to PREFLIGHT_MAX_BODY_BYTES (harness/targets/target.py reads the answer;
    it takes this function as its ``preflight``, since targets/ may not import run/)."""
    with Transport(base_url, api_key=api_key, deadline_s=deadline_s,
                   read_timeout_s=min(DEFAULT_READ_TIMEOUT_S, deadline_s),
                   max_body_bytes=PREFLIGHT_MAX_BODY_BYTES) as transport:
        return transport.request("preflight", "GET", "/models")


class _Refused(Exception):
    """The answer's headers already say its body cannot be judged; it is not read."""


def _error_message(exc: httpx.HTTPError, ex: Exchange) -> str:
    """A transport error in words: what happened first, the library's own words after."""
    detail = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
            return f"connection refused ({detail})"
        return f"cannot connect ({detail})"
    if isinstance(exc, httpx.RemoteProtocolError) and ex.status is None:
        return f"the server closed the connection without a complete response head ({detail})"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)) and ex.status is not None:
        return f"the connection broke inside the body ({detail})"
    return detail


def _progress(watch: "_StreamWatch | None") -> str:
    if watch is None:
        return ""
    if watch.terminal is None:
        return f" with no terminal event ({watch.events} events so far)"
    return f" ({watch.events} events)"


def _deadline_message(deadline: float, watch: "_StreamWatch | None") -> str:
    if watch is None:
        return f"the body did not end within the {deadline:g} s deadline"
    if watch.terminal is None:
        return f"no terminal event within the {deadline:g} s deadline ({watch.events} events)"
    return f"the stream did not end within the {deadline:g} s deadline"


def _asks_to_stream(url: str, body: bytes | None) -> bool:
    """The request asks for a stream: its body is a JSON object with ``"stream": true``, or its
    query says ``stream=true`` (a stored response's events again, ``GET /responses/{id}``)."""
    if parse_qs(urlsplit(url).query).get("stream") == ["true"]:
        return True
    if not body or b'"stream"' not in body:
        return False
    try:
        parsed = orjson.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


def _timeout_message(exc: httpx.TimeoutException, ex: Exchange, elapsed: float,
                     deadline: float, read_timeout: float, watch: "_StreamWatch | None") -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting ({min(CONNECT_TIMEOUT_S, deadline):g} s)"
    if ex.status is None:
        # The same words whether the read timeout or the watchdog noticed first.
        if read_timeout >= deadline:
            return f"no response headers within {deadline:g} s (the deadline)"
        return f"no response headers within {read_timeout:g} s (timed out: the read timeout)"
    last = ex.chunks[-1][0] if ex.chunks else (ex.t_headers or 0.0)
    return (f"timed out: no data for {elapsed - last:.1f} s, {elapsed:.1f} s into the exchange"
            + _progress(watch))


class Watchdog:
    """Shuts the exchange's sockets down at a given time. ``shutdown(SHUT_RDWR)`` (unlike
    ``close()``) wakes a thread blocked reading, writing or handshaking on that socket; httpx
    (or websockets, harness/run/ws_client.py) then sees the connection end. ``at()`` (re)schedules
    it; ``cancel()`` disarms it for good, under the same lock as the firing, so a socket
    returned to the pool, or carrying a WebSocket's next turn, is never touched afterwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._socks: list[socket.socket] = []
        self._done = False
        self.fired = False
        self.reason: str | None = None

    def arm(self, stream: Any) -> None:
        """Watch an httpcore network stream's socket."""
        self.arm_socket(stream.get_extra_info("socket") if stream is not None else None)

    def arm_socket(self, sock: socket.socket | None) -> None:
        with self._lock:
            if self._done or sock is None or sock in self._socks:
                return
            self._socks.append(sock)
            if self.fired:
                self._shutdown()

    def at(self, when: float, reason: str) -> None:
        with self._lock:
            if self._done:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(0.0, when - time.monotonic()), self._fire,
                                          args=(reason,))
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()

    def _fire(self, reason: str) -> None:
        with self._lock:
            if self._done:
                return
            self.fired, self.reason = True, reason
            self._shutdown()

    def _shutdown(self) -> None:
        for sock in self._socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing left to wake


class _StreamWatch:
    """Frames an event stream as it arrives, only to know two things: has the terminal event
    come, and has one event outgrown the frame cap. Judging is the verdict's business."""

    __slots__ = ("decoder", "terminal", "terminal_at", "events")

    def __init__(self, max_frame_bytes: int) -> None:
        self.decoder = SSEDecoder(FindingLog(), max_frame_bytes=max_frame_bytes)
        self.terminal: str | None = None
        self.terminal_at: float | None = None
        self.events = 0

    @property
    def overflow(self) -> bool:
        return self.decoder.log.failed("sse.limits")

    def feed(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.events += 1
            if self.terminal is None:
                self.terminal = _terminal_type(frame)


def _terminal_type(frame: Frame) -> str | None:
    if frame.event in TERMINAL_EVENTS:
        return frame.event
    data = frame.data
    # Cheap filter before parsing: only a terminal event's frame names a terminal type.
    if "response.completed" in data or "response.incomplete" in data \
            or "response.failed" in data:
        try:
            etype = orjson.loads(data).get("type")
        except (ValueError, AttributeError):
            return None
        if etype in TERMINAL_EVENTS:
            return etype
    return None
