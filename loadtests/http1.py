"""A small blocking HTTP/1.1 client over h11 that hands body bytes over the moment they arrive.

Why not ``requests``/``HttpUser``: a load generator measuring time-to-first-token must see each
SSE event when its bytes come off the socket. Here every ``recv()`` goes straight through h11
(which undoes chunked transfer-encoding, nothing more) to the observer with its
``perf_counter()`` reading; nothing buffers by line or by size. Under locust the socket module
is gevent's (monkey-patched), so each user's blocking ``recv`` is a cooperative wait.

One ``Connection`` per user, kept alive across requests (as a real client pool does); a server
that closes it gets a fresh one on the next request.

Every request is bounded like the conformance run's (harness/run/client.py): a whole-exchange
deadline (``deadline_s``, the error ``deadline``), a silence between reads (``idle_s``,
``idle_timeout``), h11's own cap on the response head (16 KiB), and a cap on the body
(``MAX_BODY_BYTES``, the harness's: a body past it ends the exchange with ``body_cap``), so a
server that floods costs the load generator at most the cap per user. One event is capped by the
observer's SSE decoder (``loadtests/observe.py`` ``MAX_FRAME_BYTES``), well inside the body cap.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import h11

from harness.run.client import MAX_BODY_BYTES
from loadtests.observe import ExchangeObserver

# Bytes asked of one recv(). An SSE event of a text delta is ~150-300 bytes; 64 KiB lets a burst
# come through in one call without ever waiting for it to fill (recv returns what is there).
RECV_BYTES = 64 * 1024


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
        self._h11: h11.Connection | None = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = self._h11 = None

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self._sock = sock
        self._h11 = h11.Connection(h11.CLIENT)

    def post(self, path: str, body: bytes,
             make_observer: Callable[[float, float], ExchangeObserver], *,
             deadline_s: float = 60.0, idle_s: float = 30.0) -> ExchangeObserver:
        """POST ``body`` (JSON) to ``prefix + path``; feed the answer to the observer
        ``make_observer(t_send, t_send_wall)`` builds; close it and return it. Never raises for
        network trouble: that becomes the sample's error."""
        if self._h11 is not None and self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            try:
                self._h11.start_next_cycle()
            except h11.LocalProtocolError:
                self.close()
        elif self._h11 is not None:
            self.close()
        if self._sock is None:
            try:
                self._connect()
            except OSError as exc:
                t = time.perf_counter()
                obs = make_observer(t, time.time())
                obs.close(t, error=f"connect: {exc.__class__.__name__}")
                return obs
        conn, sock = self._h11, self._sock
        assert conn is not None and sock is not None
        headers = [("Host", self.host_header), ("Content-Type", "application/json"),
                   ("Accept", "text/event-stream, application/json"),
                   ("Content-Length", str(len(body)))]
        if self.api_key:
            headers.append(("Authorization", f"Bearer {self.api_key}"))
        wire = conn.send(h11.Request(method="POST", target=self.prefix + path, headers=headers))
        wire += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        t_send = time.perf_counter()
        obs = make_observer(t_send, time.time())
        deadline = t_send + deadline_s
        error: str | None = None
        body_bytes = 0
        try:
            sock.sendall(wire)
            finished = False
            while not finished:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        error = "deadline"
                        break
                    sock.settimeout(min(idle_s, left))
                    data = sock.recv(RECV_BYTES)
                    conn.receive_data(data)  # b"" means EOF; h11 turns it into ConnectionClosed
                    continue
                t = time.perf_counter()
                if isinstance(event, h11.Response):
                    ctype = next((v.decode("latin-1") for k, v in event.headers if k == b"content-type"), None)
                    obs.response_started(event.status_code, ctype, t)
                elif isinstance(event, h11.Data):
                    body_bytes += len(event.data)
                    if body_bytes > MAX_BODY_BYTES:
                        error = "body_cap"
                        break
                    obs.feed(bytes(event.data), t)
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    finished = True
                    if isinstance(event, h11.ConnectionClosed) and obs.sample.status is None:
                        error = "closed"
        except socket.timeout:
            error = "idle_timeout" if time.perf_counter() < deadline else "deadline"
        except h11.RemoteProtocolError as exc:
            error = f"protocol: {exc}"[:80]
        except OSError as exc:
            error = f"transport: {exc.__class__.__name__}"
        t_end = time.perf_counter()
        if error is not None or conn.their_state is not h11.DONE or conn.our_state is not h11.DONE:
            self.close()
        obs.close(t_end, error=error)
        return obs
