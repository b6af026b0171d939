"""HTTP transport: the Responses API's routes over ``Gateway`` (gateway.py), all errors as
OpenAI envelopes.

    POST   /v1/responses                          create (streamed, non-streamed, background)
    GET    /v1/responses/{id}                     the stored Response object, as it was sent; with
                                                  ?stream=true[&starting_after=N] its events (replay.py)
    GET    /v1/responses/{id}/input_items         the input items of that request (pagination.py)
    DELETE /v1/responses/{id}                     {"id", "object": "response", "deleted": true}
    POST   /v1/responses/{id}/cancel              background responses only (background.py)
    POST   /v1/responses/compact                  the conversation as one item (compaction.py)
    POST   /v1/responses/input_tokens             the input's token count (input_tokens.py)
    GET    /v1/models, /health
    WS     /v1/responses                          WebSocket mode: one response.create per turn (websocket.py)

What is HTTP's own is here: reading a body (``read_json``: media type, size cap, UTF-8), the
tenant of the request's key (auth.py), framing a stream's events as SSE (``sse_body``, then
``[DONE]`` when the profile wants it), and turning ``APIError`` and every other exception into
an error envelope. Every check of a request and every event come from the ``Gateway``, which
the WebSocket route (websocket.py) shares: both transports answer alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from reference_gateway import direct_body, input_tokens, observe, replay
from reference_gateway.auth import Keyring, RequireAPIKey, tenant
from reference_gateway.config import GatewayConfig
from reference_gateway.direct_body import DirectBody
from reference_gateway.errors import APIError
from reference_gateway.event_stream import (
    CLIENT_CLOSED_REQUEST,
    ClientGone,
    EventStream,
    unless_disconnected,
)
from reference_gateway.gateway import Gateway
from reference_gateway.params import parse_json_text
from reference_gateway.websocket import ResponsesSocket

log = logging.getLogger("reference_gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"


def sse(event: dict) -> bytes:
    """``event: <type>`` + ``data: <compact json>`` + blank line (WHATWG HTML, 9.2 SSE)."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def sse_batch(batch: list[dict]) -> bytes:
    """A batch of events as SSE, for one write."""
    return sse(batch[0]) if len(batch) == 1 else b"".join([sse(event) for event in batch])


class DirectSse:
    """``gateway.DirectSend`` over the connection's own body (direct_body.py): a batch framed as
    ``sse_body`` frames it, written to the transport."""

    __slots__ = ("_write", "ready")

    def __init__(self, body: DirectBody) -> None:
        self.ready, self._write = body.ready, body.write

    def send(self, events: list[dict]) -> None:
        self._write(sse_batch(events))


async def read_json(request: Request, max_bytes: int) -> object:
    """The request body as JSON, or an envelope: 415 unless ``application/json``; 413 past
    ``max_bytes`` (declared by Content-Length, or counted as a chunked body arrives); 400
    ``invalid_json`` for bytes that are not UTF-8 (RFC 8259, 8.1: JSON text exchanged between
    systems MUST be UTF-8; a BOM is refused too), for text that is not JSON, for NaN/Infinity,
    and for nesting too deep for the parser (a RecursionError, never a 500). Values that parse
    but cannot travel on (lone surrogates, out-of-range numbers, nesting past the gateway's
    limit) are refused with their path by ``params.check_json_values``."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise APIError(
            415,
            "Unsupported Content-Type: expected 'application/json'.",
            code="unsupported_media_type",
        )
    too_large = APIError(413, f"Request body exceeds {max_bytes} bytes.", code="request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"The request body is not valid UTF-8 (invalid byte at offset {exc.start}); "
                       "JSON must be sent as UTF-8.", code="invalid_json") from None
    return parse_json_text(text)


def create_app(config: GatewayConfig) -> Starlette:
    keyring = Keyring(config.api_keys)
    telemetry = observe.Telemetry(config)  # -- observability (issue 8): /metrics, JSON logs, traces
    gateway = Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        telemetry.instrument_upstreams(gateway.upstreams.values())
        try:
            yield
        finally:
            await gateway.aclose()

    async def create(request: Request) -> Response:
        turn = gateway.prepare(await read_json(request, config.max_body_bytes), tenant(request))
        if turn.req.stream:
            body = request.scope.get("extensions", {}).get(direct_body.EXTENSION)
            direct = DirectSse(body) if body is not None else None
            watch = ClientGone(request)  # from now on the client's leaving cancels this task
            try:
                events, close = await watch.guard(gateway.open_events(turn, direct))
            except BaseException:
                watch.stop()
                raise
            return EventStream(sse_body(events), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS, watch=watch,
                               close=close)
        return JSONResponse(await unless_disconnected(request, gateway.respond(turn)))

    async def sse_body(events: AsyncIterator[list[dict]]) -> AsyncIterator[bytes]:
        """HTTP's framing of ``Gateway.open_events``: each event as SSE, a batch in one write,
        then ``[DONE]`` when configured."""
        try:
            async for batch in events:
                yield sse_batch(batch)
            if config.done_sentinel:
                yield DONE
        finally:
            await events.aclose()  # a client gone: ``gateway.ended`` stores the response failed

    async def compact(request: Request) -> Response:
        return JSONResponse(gateway.compact(await read_json(request, config.max_body_bytes), tenant(request)))

    async def count_input_tokens(request: Request) -> Response:
        body = await read_json(request, config.max_body_bytes)
        counted, source = await unless_disconnected(request, gateway.count_input_tokens(body, tenant(request)))
        return JSONResponse(counted, headers={input_tokens.SOURCE_HEADER: source})

    async def retrieve(request: Request) -> Response:
        """GET: the stored object; with ``?stream=true[&starting_after=N]`` its events again (replay.py)."""
        stream, starting_after = replay.wants_stream(request.query_params)
        if stream:
            events = gateway.replay(request.path_params["response_id"], tenant(request), starting_after)
            return EventStream(sse_body(events), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
        return JSONResponse(gateway.retrieve(request.path_params["response_id"], tenant(request)))

    async def input_items(request: Request) -> Response:
        return JSONResponse(gateway.input_items(request.path_params["response_id"], tenant(request),
                                                request.query_params))

    async def delete(request: Request) -> Response:
        return JSONResponse(gateway.delete(request.path_params["response_id"], tenant(request)))

    async def cancel(request: Request) -> Response:
        return JSONResponse(gateway.cancel(request.path_params["response_id"], tenant(request)))

    async def models(request: Request) -> Response:
        return JSONResponse(await gateway.models())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/compact", compact, methods=["POST"]),
        Route("/v1/responses/input_tokens", count_input_tokens, methods=["POST"]),  # before {response_id}
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        *telemetry.routes(),
        # Starlette matches websocket scopes apart from http ones: both live on one path.
        WebSocketRoute("/v1/responses", ResponsesSocket.endpoint(
            gateway=gateway, keyring=keyring, telemetry=telemetry,
            max_connection_s=config.ws_max_connection_s, max_frame_bytes=config.max_body_bytes)),
        WebSocketRoute("/{path:path}", unknown_websocket_route),  # last: what no route above took
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=ERROR_HANDLERS,
                     middleware=[*telemetry.middleware(routes), Middleware(RequireAPIKey, keyring=keyring)])


async def unknown_websocket_route(websocket: WebSocket) -> None:
    """An upgrade to a path with no WebSocket route: the 404 envelope an HTTP request there gets,
    sent as the handshake's answer (ASGI's denial-response extension), not the server's bare 403."""
    await websocket.send_denial_response(APIError(
        404, f"Unknown route: WebSocket {websocket.url.path}", code="not_found").response())


async def on_api_error(request: Request, exc: APIError) -> Response:
    return exc.response()


async def on_http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = {404: f"Unknown route: {request.method} {request.url.path}", 405: "Method not allowed."}
    error = APIError(exc.status_code, message.get(exc.status_code, str(exc.detail)), code=code)
    response = error.response()
    if exc.headers:  # e.g. Allow on 405 (RFC 9110, 15.5.6)
        response.headers.update(exc.headers)
    return response


async def on_client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The client left while its body was being read: nobody to answer, nothing to log as a bug."""
    return APIError(CLIENT_CLOSED_REQUEST, "The client closed the connection before its request was read.",
                    code="client_closed_request").response()


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return APIError(500, "The gateway had an internal error.", type="server_error", code="server_error").response()


ERROR_HANDLERS = {APIError: on_api_error, HTTPException: on_http_error, ClientDisconnect: on_client_gone,
                  Exception: on_unexpected}
