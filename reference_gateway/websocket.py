"""WebSocket mode: ``ws://HOST:PORT/v1/responses``, one ``response.create`` per turn.

The protocol, as decided for gateway and harness alike (sources: OpenAI's WebSocket mode guide;
the pinned SDK's ``responses_client_event.py`` / ``responses_server_event.py``; Open Responses'
``WebSocketResponseCreateEvent`` / ``WebSocketErrorEvent``):

1. Endpoint and auth: the upgrade at the POST's path; ``Authorization: Bearer KEY`` of the
   upgrade request, the same keys and tenants as HTTP (auth.py). A missing or wrong key when
   keys are configured: accepted, one error event status 401 (``invalid_request_error``,
   ``invalid_api_key``), then close code 1008. ``RequireAPIKey`` only sees http scopes, so the
   key is checked here, with the same ``Keyring``.
2. Client -> server: one text frame per turn, a JSON object ``{"type": "response.create",
   ...the POST body's fields...}``. Binary, not JSON, not an object: error event 400
   ``invalid_json``; another ``type``: 400 ``unknown_event_type``, param ``type``. The socket
   stays open.
3. ``stream``, ``stream_options``, ``background`` MUST NOT be sent (any value, null included: the
   key's presence is what is refused): 400 ``unsupported_parameter``, param that name, in that
   order. The socket stays open.
4. Every error HTTP answers with status S and ``{"error": E}`` is one event
   ``{"type": "error", "status": S, "error": {type, code, message, param}}``, no
   sequence_number, no response created; the socket stays open. ``code`` is never null (Open
   Responses requires a string): an ``APIError`` without one sends its ``type``. A gateway bug
   before the response exists is 500 ``server_error``, as HTTP's ``on_unexpected``.
5. Otherwise exactly the events of HTTP streaming (``Gateway.open_events``, the same generator), one
   JSON object per text frame, never ``[DONE]``, sequence_number from 0 per response; a failure
   after ``response.created`` is ``error`` then ``response.failed``. The turn ends at the
   terminal event or at a rule-4 error event.
6. Sequential: one response at a time; frames that arrive meanwhile wait in a queue
   (``MAX_QUEUED_FRAMES``, then back-pressure) and are answered in arrival order.
7. Connection-local cache: each response that ends (any terminal status, stored or not) is kept
   on the connection with its whole context (input after previous_response_id expansion) and
   its output; only the most recent one.
8. previous_response_id resolves first in that cache, then in the store (``Gateway.conversation``,
   same tenant rules): a store:false response continues on its own socket only.
9. A turn that fails (rule-4 error, or a response ending ``failed``) and named
   previous_response_id X evicts X from the cache (a failed response replaces it anyway, by 7).
10. store:true responses are stored exactly as over HTTP (the same ``keep``).
11. A client that disconnects mid-response cancels the turn: the event generator is cancelled or
   closed, so (as over HTTP) the upstream request is closed and the response stored ``failed``
   "The client disconnected ...".
12. Lifetime ``--ws-max-connection-seconds`` (default 3600): a frame that arrives past it is
   answered with error event 400 ``websocket_connection_limit_reached``, then close 1000.
   Nearest thing, for a bound on every wait: a socket that stays idle for ``IDLE_GRACE_S``
   beyond its lifetime is closed (1000) without a turn to answer; a turn in flight at the
   limit runs to its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from reference_gateway.auth import Keyring
from reference_gateway.errors import APIError
from reference_gateway.gateway import FINAL_EVENTS, Gateway
from reference_gateway.observe import Telemetry
from reference_gateway.params import parse_json_text
from reference_gateway.store_contract import StoredResponse

log = logging.getLogger("reference_gateway")

CREATE_EVENT = "response.create"
TERMINAL_EVENTS = FINAL_EVENTS - {"error"}  # the events that end a response
REFUSED_FIELDS = ("stream", "stream_options", "background")  # rule 3, in the order checked
# Frames waiting while a response is in flight; beyond it the reader stops reading and
# uvicorn's own queue (its ``ws_max_queue``, 32) and then TCP push back on the client.
MAX_QUEUED_FRAMES = 32
# An idle socket is closed this long after its lifetime ended (rule 12): a minute, uvicorn's
# ping interval plus timeout (20 s + 20 s) rounded up: long enough for a client that is about to
# send to hear the limit error rather than a bare close.
IDLE_GRACE_S = 60.0
# After the client is gone, how long the cancelled turn may take to close its upstream request.
CANCEL_WAIT_S = 5.0
POLICY_VIOLATION = 1008  # RFC 6455, 7.4.1
NORMAL_CLOSURE = 1000


def error_event(exc: APIError) -> dict:
    """Rule 4: the error event for what HTTP answers with ``exc.response()``."""
    return {"type": "error", "status": exc.status,
            "error": {"type": exc.type, "code": exc.code or exc.type, "message": exc.message, "param": exc.param}}


def frame_object(message: dict, *, max_bytes: int) -> dict:
    """The JSON object of one ``websocket.receive`` message (rule 2), or ``APIError``."""
    text = message.get("text")
    if text is None:
        raise APIError(400, "Binary frames are not accepted: send each response.create event as a JSON "
                       "text frame.", code="invalid_json")
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:  # HTTP's body cap, 413 as there
        raise APIError(413, f"Request body exceeds {max_bytes} bytes.", code="request_too_large")
    event = parse_json_text(text)
    if not isinstance(event, dict):
        raise APIError(400, "The event must be a JSON object.", code="invalid_json")
    return event


def create_body(event: dict) -> dict:
    """The POST body that a ``response.create`` event carries (rules 2, 3), or ``APIError``."""
    kind = event.get("type")
    if kind != CREATE_EVENT:
        raise APIError(400, f"Unknown event type: {kind!r}; the only client event is '{CREATE_EVENT}'.",
                       param="type", code="unknown_event_type")
    for name in REFUSED_FIELDS:
        if name in event:
            raise APIError(400, f"'{name}' must not be sent over WebSocket: every response is streamed, "
                           "and background responses are not available in WebSocket mode.",
                           param=name, code="unsupported_parameter")
    return {key: value for key, value in event.items() if key != "type"}


class ResponsesSocket:
    """One WebSocket connection: its tenant, its queue of frames, its one-response cache."""

    def __init__(self, websocket: WebSocket, *, gateway: Gateway, keyring: Keyring, telemetry: Telemetry,
                 max_connection_s: float, max_frame_bytes: int) -> None:
        self.websocket = websocket
        self.gateway = gateway
        self.keyring = keyring
        self.telemetry = telemetry
        self.max_connection_s = max_connection_s
        self.max_frame_bytes = max_frame_bytes
        self.owner: str | None = None
        self.last: StoredResponse | None = None  # rule 7: the most recent response that ended

    @classmethod
    def endpoint(cls, **options) -> Callable[[WebSocket], Awaitable[None]]:
        async def serve(websocket: WebSocket) -> None:
            await cls(websocket, **options).serve()

        return serve

    def cached(self, response_id: str) -> StoredResponse | None:
        """Rule 8: the socket's own response, asked before the store."""
        last = self.last
        return last if last is not None and last.body["id"] == response_id else None

    async def send(self, event: dict) -> None:
        await self.websocket.send_text(orjson.dumps(event).decode())

    async def serve(self) -> None:
        websocket = self.websocket
        await websocket.accept()
        opened_at = asyncio.get_running_loop().time()
        try:
            self.owner = self.keyring.tenant(websocket.headers.get("authorization"))  # rule 1
        except APIError as exc:
            try:
                await self.send(error_event(exc))
                await websocket.close(POLICY_VIOLATION, "invalid_api_key")
            except (WebSocketDisconnect, OSError, RuntimeError):
                pass
            return
        frames: asyncio.Queue[dict] = asyncio.Queue(MAX_QUEUED_FRAMES)
        reader = asyncio.create_task(self._read(frames))
        worker = asyncio.create_task(self._work(frames, deadline=opened_at + self.max_connection_s))
        try:
            await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The reader ended: the client is gone, so a turn in flight is cancelled (rule 11)
            # and closes its upstream request. The worker ended: the socket is closed.
            for task in (worker, reader):
                task.cancel()
            await asyncio.wait({reader, worker}, timeout=CANCEL_WAIT_S)

    async def _read(self, frames: asyncio.Queue) -> None:
        """Every frame into ``frames`` until the client goes (``websocket.disconnect``)."""
        while True:  # ends with the connection: at the latest when the worker closes it
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] == "websocket.receive":
                await frames.put(message)

    async def _work(self, frames: asyncio.Queue, *, deadline: float) -> None:
        """Rule 6 and 12: the frames, one turn at a time, until the socket's lifetime ends."""
        loop = asyncio.get_running_loop()
        try:
            while True:  # bounded: after deadline + IDLE_GRACE_S it returns, whatever comes
                try:  # a frame already queued is taken even past the grace (wait_for's 0 s would not)
                    message = frames.get_nowait() if not frames.empty() else \
                        await asyncio.wait_for(frames.get(), max(0.0, deadline + IDLE_GRACE_S - loop.time()))
                except TimeoutError:
                    await self.websocket.close(NORMAL_CLOSURE, "websocket_connection_limit_reached")
                    return
                if loop.time() >= deadline:
                    self.telemetry.websocket_turn(400)
                    await self.send(error_event(APIError(
                        400, f"This WebSocket connection reached its {self.max_connection_s:g} s limit; open a "
                        "new connection to continue.", code="websocket_connection_limit_reached")))
                    await self.websocket.close(NORMAL_CLOSURE, "websocket_connection_limit_reached")
                    return
                await self._turn(message)
        except (WebSocketDisconnect, OSError):  # a send to a client already gone
            return

    async def _turn(self, message: dict) -> None:
        event: dict | None = None
        try:
            event = frame_object(message, max_bytes=self.max_frame_bytes)
            turn = self.gateway.prepare(create_body(event), self.owner, cached=self.cached, stream=True)
            events, close = await self.gateway.open_events(turn)
        except Exception as exc:
            if not isinstance(exc, APIError):
                log.exception("websocket turn failed before its response started")
                exc = APIError(500, "The gateway had an internal error.", type="server_error", code="server_error")
            self._evict(event)  # rule 9
            self.telemetry.websocket_turn(exc.status)
            await self.send(error_event(exc))
            return
        self.telemetry.websocket_turn(200)
        try:
            async for batch in events:
                for event in batch:
                    if event["type"] in TERMINAL_EVENTS:  # rule 7, before the client hears of it
                        self.last = StoredResponse(event["response"], list(turn.req.input_items), turn.context)
                    await self.send(event)
        finally:
            await events.aclose()  # a client gone mid-send: ``ended`` stores it failed (rule 11)
            await close()

    def _evict(self, event: dict | None) -> None:
        """Rule 9, for a rule-4 error: forget the previous_response_id the turn named."""
        named = event.get("previous_response_id") if isinstance(event, dict) else None
        if isinstance(named, str) and self.cached(named) is not None:
            self.last = None
