"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools protocol with caps on the request
head, and every refusal it makes in the OpenAI error envelope.

uvicorn's protocol answers a request it cannot parse itself, before any ASGI app runs, with a
plain-text ``400 Invalid HTTP request received.``, and puts no cap of its own on the request
line or the headers (llhttp has none: a 1 MB header, or 10,000 headers, reach the app). This
subclass counts the request head as the parser hands it over and refuses, with the envelope
(``{"error": {"message", "type", "param", "code"}}``) and ``connection: close``:

- a request target longer than ``MAX_REQUEST_TARGET_BYTES``: 414 ``uri_too_long`` (RFC 9110,
  15.5.15: "the target URI is longer than the server is willing to interpret");
- one header field (name and value) longer than ``MAX_HEADER_FIELD_BYTES``, all of them longer
  than ``MAX_HEADER_BYTES``, or more than ``MAX_HEADER_COUNT`` fields: 431
  ``request_header_fields_too_large`` (RFC 6585, 5: "either an individual header field, or
  all the header fields collectively, are too large");
- anything else the parser refuses (bad request line, bad header syntax, bad chunked framing
  in a body, unless the app already began its answer): 400 ``invalid_http_request``.

A WebSocket upgrade (websocket.py) goes on to uvicorn's WebSocket protocol, which refuses a bad
handshake (no ``Sec-WebSocket-Key``, a wrong version) with its own plain text, and an upgrade
the app closes before accepting with an empty 403. ``GatewayWebSocketProtocol`` makes those
the envelope too: 400 ``invalid_websocket_handshake`` with the handshake's fault as the message,
403 ``websocket_refused``. (An upgrade to a path with no WebSocket route is answered by app.py
itself: 404 ``not_found``, through the ASGI denial-response extension.)

The refusal is written straight to the transport, as uvicorn writes its own: the head was not
read whole, so there is no request to hand to the app, and the connection ends after it (what
follows on the wire cannot be trusted to start a new request). It ends with a lingering close,
as nginx (``lingering_close``) and Apache do: our side is shut for writing (FIN after the
refusal) and what the client still sends is read and dropped for ``LINGER_S``, until the
client closes. Closing at once, with the rest of a 1 MB head unread, makes the kernel send a
reset, and a reset can destroy the refusal in the client's receive buffer before it is read.

Each request's scope also gets the ``direct_body`` ASGI extension (direct_body.py): its body
written straight to the transport, for the inline relay of a chat stream's tokens.

Used by every server that runs the gateway (launch.py, __main__.py, worker.py) through
``UVICORN_OPTIONS``; the mock upstream keeps uvicorn's own protocol. It leans on the callbacks
of uvicorn's ``HttpToolsProtocol`` (``on_url``, ``on_header``, ``on_headers_complete``,
``data_received``; as of uvicorn 0.55): tests/gateway/test_http_limits.py fails if a uvicorn
release changes them under it.
"""

from __future__ import annotations

import http

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Response
from websockets.server import ServerProtocol

from reference_gateway import direct_body

# 8 KiB: nginx (``large_client_header_buffers 4 8k``: a request line longer than one 8k buffer
# is 414) and Apache (``LimitRequestLine 8190``) refuse longer request lines; a Responses API
# path with its query string is under 200 bytes.
MAX_REQUEST_TARGET_BYTES = 8 * 1024
# 8 KiB a field: nginx (one 8k buffer per header line) and Apache (``LimitRequestFieldSize
# 8190``). 32 KiB for all of them: nginx's four 8k buffers; node (16 KiB,
# ``--max-http-header-size``) and h11 (16 KiB, ``DEFAULT_MAX_INCOMPLETE_EVENT_SIZE``) are
# stricter, Go (1 MiB, ``DefaultMaxHeaderBytes``) looser. The openai Python SDK sends 670 bytes
# (17 fields, a 164-character key).
MAX_HEADER_FIELD_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
# 100 fields: Apache's ``LimitRequestFields`` default.
MAX_HEADER_COUNT = 100
# The whole head on the wire: the caps above plus the framing (": " and CRLF per field, the
# method and the version). llhttp hands a field over only once it is whole (httptools buffers
# it), so without this a field of any size would be buffered before its cap is checked.
MAX_HEAD_BYTES = MAX_REQUEST_TARGET_BYTES + MAX_HEADER_BYTES + 4 * MAX_HEADER_COUNT + 1024
# How long a refused connection is drained before it is closed: nginx's ``lingering_timeout``
# is 5 s; a client that sent its head is done writing well within 2 s on any network that
# carried it.
LINGER_S = 2.0


class HeadRefused(httptools.HttpParserError):
    """The request head broke a cap: raised from a parser callback, it ends ``feed_data``."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def envelope(message: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": code}})


def refusal_bytes(status: int, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 response: ``status`` with the OpenAI envelope, then the connection closes."""
    body = envelope(message, code)
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body])


class EnvelopedServerProtocol(ServerProtocol):
    """websockets' handshake, refusing in the OpenAI envelope instead of plain text. Every
    refusal of uvicorn's WebSocket protocol goes through ``reject``: a handshake websockets
    finds wrong (400, its reason as ``text``), an upgrade the app closed before accepting
    (403, no text), an unparsable request (400), the caps of websockets 17 (414, 431)."""

    def reject(self, status: http.HTTPStatus | int, text: str) -> Response:
        status = http.HTTPStatus(status)
        response = super().reject(status, "")  # its Date and Connection: close
        reason = text.strip().removeprefix("Failed to open a WebSocket connection: ").rstrip(".")
        if status == http.HTTPStatus.FORBIDDEN:
            body = envelope("The WebSocket connection was refused.", "websocket_refused")
        else:
            body = envelope(f"Invalid WebSocket handshake: {reason or status.phrase}.", "invalid_websocket_handshake")
        for name, value in (("Content-Type", "application/json"), ("Content-Length", str(len(body)))):
            del response.headers[name]  # websockets' Headers appends on assignment
            response.headers[name] = value
        response.body = body
        return response


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (the one it picks when websockets is installed) over
    ``EnvelopedServerProtocol``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The ServerProtocol uvicorn built (its extensions, size cap, logger), given the one
        # method that differs; nothing has been parsed yet. A subclass adding no state, so the
        # object stays whole whatever uvicorn passes to the constructor.
        self.conn.__class__ = EnvelopedServerProtocol


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the caps and the envelope of the module docstring."""

    _in_head = True  # the parser has not yet seen the end of a request's head
    _refused = False  # a refusal was sent: what comes now is drained, not parsed
    _wire_head_bytes = 0  # bytes fed to the parser while in a head (approximate across pipelining)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head, self._wire_head_bytes = False, 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # a new request (not an upgrade): before its app runs
            direct_body.install(self.scope, cycle)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_REQUEST_TARGET_BYTES:
            raise HeadRefused(414, f"The request target exceeds {MAX_REQUEST_TARGET_BYTES} bytes.", "uri_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._head_bytes += size
        if size > MAX_HEADER_FIELD_BYTES:
            raise HeadRefused(431, f"A request header field exceeds {MAX_HEADER_FIELD_BYTES} bytes.",
                              "request_header_fields_too_large")
        if self._head_bytes > MAX_HEADER_BYTES:
            raise HeadRefused(431, f"The request header fields exceed {MAX_HEADER_BYTES} bytes in all.",
                              "request_header_fields_too_large")
        if len(self.headers) >= MAX_HEADER_COUNT:
            raise HeadRefused(431, f"The request has more than {MAX_HEADER_COUNT} header fields.",
                              "request_header_fields_too_large")
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._wire_head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            refused = exc if isinstance(exc, HeadRefused) else exc.__context__
            if isinstance(refused, HeadRefused):
                self.refuse(refused.status, refused.message, refused.code)
            else:
                self.refuse(400, "Invalid HTTP request received.", "invalid_http_request")
            return
        # Checked after the parser had its turn, so that an over-long target is still a 414; what
        # one read of the socket brings (256 KiB at most under asyncio) is all a field can grow by first.
        if self._in_head and self._wire_head_bytes > MAX_HEAD_BYTES:
            self.refuse(431, f"The request head exceeds {MAX_HEAD_BYTES} bytes.", "request_header_fields_too_large")

    def refuse(self, status: int, message: str, code: str) -> None:
        """Answer ``status`` with the envelope and end the connection (module docstring). A
        request whose body broke the parser (bad chunked framing) has its app running: it
        is told the client is gone (as uvicorn's ``connection_lost`` tells it), so that it
        stops and writes nothing more; if it had begun its answer, no second one is sent."""
        self.logger.warning("refused a request: %s", message)
        self._refused = True
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if answering:
            cycle.disconnected = True
            cycle.message_event.set()
        if not (answering and cycle.response_started):
            self.transport.write(refusal_bytes(status, message, code))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:  # uvicorn's own callers of it, if any remain
        self.refuse(400, msg, "invalid_http_request")


# What every uvicorn.Config / uvicorn.run of the gateway passes (an import string: worker
# processes are spawned, and uvicorn imports it in each).
UVICORN_OPTIONS = {"http": f"{__name__}:{GatewayHttpProtocol.__name__}",
                   "ws": f"{__name__}:{GatewayWebSocketProtocol.__name__}"}
