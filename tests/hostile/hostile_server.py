"""A Responses API server that misbehaves on purpose, for the harness's robustness tests.

It is a raw asyncio socket server, not an ASGI app: most of its misbehaviours live below HTTP
(never answering, a body that never ends, 100 MB written as fast as the socket takes it), which
an ASGI server would smooth over. One server serves every case. By default the request's
``model`` picks the misbehaviour (``MODES``), so a scenario selects it with data alone;
``HostileServer(routes={route: mode})`` makes a route misbehave whatever is asked of it, the
routes being ``ROUTES``: ``models`` (GET /models, the preflight), ``create`` (POST /responses),
``get`` (GET /responses/{id}...), ``delete``, ``compact`` (POST /responses/compact), ``cancel``
(POST /responses/{id}/cancel) and ``ws`` (the WebSocket upgrade and, after it, its frames):

    hostile-no-headers      reads the request, then never sends a byte (not even headers)
    hostile-trickle-headers a header line every 50 ms, forever: the headers never end
    hostile-endless         a valid stream start, then output_text deltas forever, flat out
    hostile-drip            a valid stream start, then one delta every 50 ms forever
    hostile-stall           a valid stream start, deltas for 0.8 s, then silence (open)
    hostile-huge-frame      a valid stream start, then one 100 MB delta frame, written fast
    hostile-data-forever    ``data:`` lines forever, flat out, and never a blank line
    hostile-no-blank-line   a whole, correct stream whose frames end in one LF, not two: no
                            blank line ever, so no event is ever dispatched; then it closes
    hostile-invalid-utf8    a whole, correct stream with two invalid UTF-8 bytes in a delta
    hostile-keep-open       a whole, correct stream (chunked), then neither the final chunk
                            nor a close: the body stays open after response.completed
    hostile-trickle-bytes   the status line, then one header byte a second, forever
    hostile-wrong-type      a whole, correct body sent as ``text/html``
    hostile-gzip-bomb       ``Content-Encoding: gzip``: ~100 KB that decode to 100 MB (1000x)
    hostile-close-mid-frame half of an event (or of a JSON body), then the socket closes
    anything else           well behaved: a correct stream (``stream: true``) or Response
                            object, keep-alive, Content-Length

``GET /v1/models`` lists the modes (the CLI's preflight needs an answer). Every handler gives up
on its own after ``HOLD_CAP_S`` and stops writing after ``SEND_CAP_BYTES``, so a broken harness
fails its test instead of hanging the suite; ``close()`` ends them all at once. ``hangups``
records, per mode, how long after the request the client went away: the proof that the harness
cut the connection itself rather than waiting for the server.

On the ``ws`` route the same modes apply to the upgrade (no answer, trickled, wrong type: a 200
``text/html`` page instead of 101, ``gzip-bomb``: a 101 that forces permessage-deflate on a
client that did not offer it) or, after a correct 101, to the frames (endless and drip: text
frames forever; huge-frame: one 100 MB frame; stall: silence; close-mid-frame: half a frame
then the socket closes).

The server's own memory stays small (a 1 MiB block written again and again), so a test that
measures the harness's memory in the same process measures the harness.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import zlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from stream_builder import message_stream, to_sse  # noqa: E402

HOLD_CAP_S = 30.0  # the longest any handler keeps a connection, whatever the client does
SEND_CAP_BYTES = 512 * 1024 * 1024  # the most a flooding handler writes to one connection
HUGE_FRAME_BYTES = 100 * 1024 * 1024
BLOCK = 1024 * 1024
DRIP_INTERVAL_S = 0.05
STALL_AFTER_S = 0.8
MAX_REQUEST_HEAD = 64 * 1024

NO_HEADERS = "hostile-no-headers"
TRICKLE_HEADERS = "hostile-trickle-headers"
ENDLESS = "hostile-endless"
DRIP = "hostile-drip"
STALL = "hostile-stall"
HUGE_FRAME = "hostile-huge-frame"
DATA_FOREVER = "hostile-data-forever"
NO_BLANK_LINE = "hostile-no-blank-line"
INVALID_UTF8 = "hostile-invalid-utf8"
KEEP_OPEN = "hostile-keep-open"
TRICKLE_BYTES = "hostile-trickle-bytes"
WRONG_TYPE = "hostile-wrong-type"
GZIP_BOMB = "hostile-gzip-bomb"
CLOSE_MID_FRAME = "hostile-close-mid-frame"
WELL_BEHAVED = "well-behaved"
MODES = (NO_HEADERS, TRICKLE_HEADERS, ENDLESS, DRIP, STALL, HUGE_FRAME, DATA_FOREVER, NO_BLANK_LINE, INVALID_UTF8,
         KEEP_OPEN, TRICKLE_BYTES, WRONG_TYPE, GZIP_BOMB, CLOSE_MID_FRAME)
ROUTES = ("models", "create", "get", "delete", "compact", "cancel", "ws")
TRICKLE_BYTE_INTERVAL_S = 1.0
GZIP_DECODED_BYTES = 100 * 1024 * 1024
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

_EVENTS = message_stream([["Hello", ",", " PLACEHOLDER", "!"]])
GOOD_STREAM = to_sse(_EVENTS)
GOOD_RESPONSE = json.dumps(_EVENTS[-1]["response"]).encode()
# The stream's first four events (created, in_progress, item added, part added): a flood that
# starts correctly, so the only thing wrong with it is that it never ends.
_START = to_sse(_EVENTS[:4])
_ITEM_ID = _EVENTS[2]["item"]["id"]
BAD_UTF8 = b" bad \xff\xfe bytes"
INVALID_UTF8_STREAM = GOOD_STREAM.replace(b" PLACEHOLDER", BAD_UTF8)
BAD_UTF8_OFFSET = INVALID_UTF8_STREAM.index(b"\xff")
NO_BLANK_LINE_STREAM = GOOD_STREAM.replace(b"\n\n", b"\n")



def _gzip_bomb() -> bytes:
    """GZIP_DECODED_BYTES of zeros, gzip-compressed a block at a time (~100 KB: 1000x)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    block = bytes(BLOCK)
    parts = [comp.compress(block) for _ in range(GZIP_DECODED_BYTES // BLOCK)]
    return b"".join(parts) + comp.flush()


GZIP_BOMB_BODY = _gzip_bomb()


def route_of(method: str, path: str, headers: dict[str, str]) -> str:
    """Which of ROUTES a request is."""
    path = path.split("?", 1)[0].rstrip("/")
    if headers.get("upgrade", "").lower() == "websocket":
        return "ws"
    if path.endswith("/models"):
        return "models"
    if method == "DELETE":
        return "delete"
    if method == "GET":
        return "get"
    if path.endswith("/responses/compact"):
        return "compact"
    if re.search(r"/responses/[^/]+/cancel$", path):
        return "cancel"
    return "create"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One unmasked server frame (RFC 6455 section 5.2), FIN set."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"connection: close\r\n\r\n")


def _delta(seq: int, text: str = "flood ") -> bytes:
    return (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"sequence_number":%d,"item_id":"%s","output_index":0,"content_index":0,'
            b'"delta":"%s","logprobs":[]}\n\n' % (seq, _ITEM_ID.encode(), text.encode()))


class HostileServer:
    """``with HostileServer() as server: server.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, routes: dict[str, str] | None = None) -> None:
        unknown = set(routes or {}) - set(ROUTES) or {m for m in (routes or {}).values()
                                                      if m not in MODES}
        if unknown:
            raise ValueError(f"unknown routes or modes: {sorted(unknown)}")
        self.routes = dict(routes or {})
        self.hangups: dict[str, list[float]] = {}  # mode -> seconds from request to hang-up
        self.requests: list[str] = []  # the mode of every request, in order
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile server did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)

    # -- the server loop -------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._requests(reader, writer)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, asyncio.CancelledError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _requests(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: one request after another on this connection
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HOLD_CAP_S)
            if len(head) > MAX_REQUEST_HEAD:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
            headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            route = route_of(method, path, headers)
            if route in self.routes:
                mode = self.routes[route]
                self.requests.append(mode)
                t0 = time.monotonic()
                handler = self._ws_handler(mode, headers) if route == "ws" else getattr(
                    self, "_" + mode.removeprefix("hostile-").replace("-", "_"))
                try:
                    await asyncio.wait_for(handler(reader, writer), HOLD_CAP_S)
                except (ConnectionError, asyncio.TimeoutError):
                    pass
                self.hangups.setdefault(f"{route}:{mode}", []).append(time.monotonic() - t0)
                return
            if method == "GET" and path.rstrip("/").endswith("/models"):
                data = {"object": "list", "data": [{"id": m, "object": "model"}
                                                  for m in (*MODES, WELL_BEHAVED)]}
                await self._respond(writer, 200, "application/json", json.dumps(data).encode())
                continue
            try:
                request = json.loads(body)
            except ValueError:
                request = {}
            mode = request.get("model") if isinstance(request, dict) else None
            mode = mode if mode in MODES else WELL_BEHAVED
            self.requests.append(mode)
            t0 = time.monotonic()
            try:
                if mode == WELL_BEHAVED:
                    stream = isinstance(request, dict) and request.get("stream") is True
                    await self._respond(writer, 200, "text/event-stream" if stream
                                        else "application/json",
                                        GOOD_STREAM if stream else GOOD_RESPONSE)
                    continue
                handler = getattr(self, "_" + mode.removeprefix("hostile-").replace("-", "_"))
                await asyncio.wait_for(handler(reader, writer), HOLD_CAP_S)
            except (ConnectionError, asyncio.TimeoutError):
                pass
            self.hangups.setdefault(mode, []).append(time.monotonic() - t0)
            return  # every misbehaviour ends the connection (or the client does)

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: int, ctype: str,
                       body: bytes) -> None:
        writer.write(b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
                     % (status, ctype.encode(), len(body)) + body)
        await writer.drain()

    # -- the misbehaviours (each returns when the client has gone) --------------------------
    @staticmethod
    async def _until_hangup(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def _no_headers(self, reader, writer) -> None:
        await self._until_hangup(reader)

    async def _trickle_headers(self, reader, writer) -> None:
        hangup = asyncio.ensure_future(self._until_hangup(reader))
        try:
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while not hangup.done():
                await writer.drain()
                await asyncio.wait([hangup], timeout=DRIP_INTERVAL_S)
                writer.write(b"x-never-ending: header\r\n")
        finally:
            hangup.cancel()

    async def _flood(self, writer, blocks) -> None:
        sent = 0
        for block in blocks:
            writer.write(block)
            await writer.drain()  # raises ConnectionResetError once the client hangs up
            sent += len(block)
            if sent > SEND_CAP_BYTES:
                return

    async def _endless(self, reader, writer) -> None:
        def blocks():
            yield SSE_HEAD + _START
            seq = 4
            while True:
                yield b"".join(_delta(n) for n in range(seq, seq + 500))
                seq += 500
        await self._flood(writer, blocks())

    async def _stall(self, reader, writer) -> None:
        await self._drip(reader, writer, for_s=STALL_AFTER_S)

    async def _drip(self, reader, writer, *, for_s: float | None = None) -> None:
        """Deltas every DRIP_INTERVAL_S; with ``for_s``, only that long, then silence."""
        hangup = asyncio.ensure_future(self._until_hangup(reader))
        until = time.monotonic() + (for_s if for_s is not None else HOLD_CAP_S)
        try:
            writer.write(SSE_HEAD + _START)
            seq = 4
            while not hangup.done() and time.monotonic() < until:
                await writer.drain()
                await asyncio.wait([hangup], timeout=DRIP_INTERVAL_S)
                writer.write(_delta(seq, "drip "))
                seq += 1
            await hangup  # silence until the client hangs up
        finally:
            hangup.cancel()

    async def _huge_frame(self, reader, writer) -> None:
        def blocks():
            yield SSE_HEAD + _START + (b'event: response.output_text.delta\ndata: {"type":'
                                       b'"response.output_text.delta","sequence_number":4,'
                                       b'"item_id":"%s","output_index":0,"content_index":0,'
                                       b'"logprobs":[],"delta":"' % _ITEM_ID.encode())
            block = b"x" * BLOCK
            for _ in range(HUGE_FRAME_BYTES // BLOCK):
                yield block
            yield b'"}\n\n'
        await self._flood(writer, blocks())
        await self._until_hangup(reader)

    async def _data_forever(self, reader, writer) -> None:
        def blocks():
            yield SSE_HEAD
            line = b'data: {"type":"response.output_text.delta","delta":"no blank line"}\n'
            block = line * (BLOCK // len(line))
            while True:
                yield block
        await self._flood(writer, blocks())

    async def _no_blank_line(self, reader, writer) -> None:
        writer.write(SSE_HEAD + NO_BLANK_LINE_STREAM)
        await writer.drain()
        writer.close()  # close-delimited body: the stream ends inside its only frame

    async def _invalid_utf8(self, reader, writer) -> None:
        writer.write(SSE_HEAD + INVALID_UTF8_STREAM)
        await writer.drain()
        writer.close()

    async def _keep_open(self, reader, writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n"
                     + b"%x\r\n" % len(GOOD_STREAM) + GOOD_STREAM + b"\r\n")
        await writer.drain()
        await self._until_hangup(reader)  # never the final "0\r\n\r\n"

    async def _trickle_bytes(self, reader, writer) -> None:
        hangup = asyncio.ensure_future(self._until_hangup(reader))
        try:
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while not hangup.done():
                await writer.drain()
                await asyncio.wait([hangup], timeout=TRICKLE_BYTE_INTERVAL_S)
                writer.write(b"x")
        finally:
            hangup.cancel()

    async def _wrong_type(self, reader, writer) -> None:
        page = b"<html><body>" + GOOD_STREAM + b"</body></html>"
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n" % len(page) + page)
        await writer.drain()
        writer.close()

    async def _gzip_bomb(self, reader, writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n"
                     % len(GZIP_BOMB_BODY) + GZIP_BOMB_BODY)
        await writer.drain()
        await self._until_hangup(reader)

    async def _close_mid_frame(self, reader, writer) -> None:
        writer.write(SSE_HEAD + _START + _delta(4)[:40])
        await writer.drain()
        writer.close()

    # -- the WebSocket route --------------------------------------------------------------
    def _ws_handler(self, mode: str, headers: dict[str, str]):
        """The misbehaviour on the upgrade itself, or a correct 101 then bad frames."""
        if mode in (NO_HEADERS, TRICKLE_HEADERS, TRICKLE_BYTES):
            return getattr(self, "_" + mode.removeprefix("hostile-").replace("-", "_"))
        accept = base64.b64encode(hashlib.sha1(
            headers.get("sec-websocket-key", "").encode() + WS_GUID).digest())
        upgraded = (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                    b"connection: Upgrade\r\nsec-websocket-accept: %s\r\n" % accept)

        async def handler(reader, writer) -> None:
            if mode == WRONG_TYPE:
                await self._wrong_type(reader, writer)
                return
            if mode == GZIP_BOMB:  # an extension the client never offered
                writer.write(upgraded + b"sec-websocket-extensions: permessage-deflate\r\n\r\n")
                await writer.drain()
                await self._until_hangup(reader)
                return
            writer.write(upgraded + b"\r\n")
            await writer.drain()
            if mode == HUGE_FRAME:
                writer.write(bytes([0x81, 127]) + HUGE_FRAME_BYTES.to_bytes(8, "big"))
                await self._flood(writer, (bytes(BLOCK) for _ in range(HUGE_FRAME_BYTES // BLOCK)))
            elif mode == CLOSE_MID_FRAME:
                writer.write(ws_frame(_delta(4))[:30])
                await writer.drain()
                writer.close()
                return
            elif mode in (ENDLESS, DATA_FOREVER, DRIP, NO_BLANK_LINE, INVALID_UTF8, KEEP_OPEN):
                # text frames forever, each one delta event, never a terminal one
                per_write = 1 if mode == DRIP else 500

                def blocks():
                    seq = 0
                    while True:
                        yield b"".join(ws_frame(_delta(n).split(b"data: ", 1)[1].strip())
                                       for n in range(seq, seq + per_write))
                        seq += per_write
                for block in blocks():
                    writer.write(block)
                    await writer.drain()
                    if mode == DRIP:
                        await asyncio.sleep(DRIP_INTERVAL_S)
            await self._until_hangup(reader)  # STALL: a correct 101, then silence
        return handler
