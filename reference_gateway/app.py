"""The Starlette app: routes of the Responses API surface, all errors as OpenAI envelopes."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reference_gateway import translate
from reference_gateway.config import GatewayConfig
from reference_gateway.emitter import Emitter
from reference_gateway.errors import APIError
from reference_gateway.params import CreateRequest, parse_create
from reference_gateway.store import ResponseStore
from reference_gateway.upstream import Upstream

log = logging.getLogger("reference_gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"


def sse(event: dict) -> bytes:
    """``event: <type>`` + ``data: <compact json>`` + blank line (WHATWG HTML, 9.2 SSE)."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


async def read_json(request: Request, max_bytes: int) -> object:
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

    def no_constant(name: str) -> None:  # NaN and Infinity are not JSON (RFC 8259, section 6)
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(body, parse_constant=no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None


def create_app(config: GatewayConfig) -> Starlette:
    store = ResponseStore(config.db_path)
    upstream: Upstream | None = None  # created on the server's event loop, in lifespan

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal upstream
        upstream = Upstream(config)
        try:
            yield
        finally:
            await upstream.aclose()
            store.close()

    def keep(response: dict) -> None:
        if response["store"]:
            store.put(response)

    async def create(request: Request) -> Response:
        req = parse_create(await read_json(request, config.max_body_bytes))
        chat = translate.chat_request(req)
        if not req.stream:
            response = translate.from_chat_completion(req, await upstream.complete(chat))
            keep(response)
            return JSONResponse(response)
        # Open the upstream stream first: a refusal or an unreachable upstream still gets a
        # proper status code, since nothing has been committed to the client yet.
        opened = await upstream.open_stream(chat)
        return StreamingResponse(
            stream_events(req, opened),
            media_type=SSE_MEDIA_TYPE,
            headers=SSE_HEADERS,
            background=BackgroundTask(opened.aclose),  # also when the body never started
        )

    async def stream_events(req: CreateRequest, opened) -> AsyncIterator[bytes]:
        emitter = Emitter(translate.new_response(req))
        try:
            for event in emitter.start():
                yield sse(event)
            finish_reason, chat_usage = None, None
            try:
                async for chunk in Upstream.chunks(opened):
                    chat_usage = chunk.get("usage") or chat_usage
                    for choice in chunk.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            for event in emitter.text(delta):
                                yield sse(event)
                        finish_reason = choice.get("finish_reason") or finish_reason
            except APIError as exc:
                events = emitter.fail(exc.message)
                keep(emitter.response)
                for event in events:
                    yield sse(event)
                return
            events = emitter.finish(finish_reason, chat_usage)
            keep(emitter.response)  # stored before the terminal event: a GET right after sees it
            for event in events:
                yield sse(event)
            if config.done_sentinel:
                yield b"data: [DONE]\n\n"
        finally:
            await opened.aclose()

    async def retrieve(request: Request) -> Response:
        response = store.get(request.path_params["response_id"])
        if response is None:
            raise not_found(request.path_params["response_id"])
        return JSONResponse(response)

    async def delete(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        if not store.delete(response_id):
            raise not_found(response_id)
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    async def models(request: Request) -> Response:
        if config.models:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "reference-gateway"} for m in config.models]
            return JSONResponse({"object": "list", "data": data})
        return JSONResponse(await upstream.models())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=ERROR_HANDLERS)


def not_found(response_id: str) -> APIError:
    return APIError(404, f"No response found with id '{response_id}'.", code="not_found")


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


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return APIError(500, "The gateway had an internal error.", type="server_error", code="server_error").response()


ERROR_HANDLERS = {APIError: on_api_error, HTTPException: on_http_error, Exception: on_unexpected}
