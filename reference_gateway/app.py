"""The Starlette app: routes of the Responses API surface, all errors as OpenAI envelopes.

    POST   /v1/responses                          create (streamed, non-streamed, background)
    GET    /v1/responses/{id}                     the stored Response object, as it was sent
    GET    /v1/responses/{id}/input_items         the input items of that request (pagination.py)
    DELETE /v1/responses/{id}                     {"id", "object": "response", "deleted": true}
    POST   /v1/responses/{id}/cancel              background responses only (background.py)
    GET    /v1/models, /health
    WS     /v1/responses                          WebSocket mode: one response.create per turn (websocket.py)

A create request is checked and resolved by ``prepare`` (a ``Turn``) and, when streamed, its
events come from ``open_events`` as dicts: HTTP frames each as SSE (``sse_body``), the WebSocket
route sends each as one text frame. Both transports share every check and every event.

``previous_response_id`` continues a stored conversation: the upstream sees this request's
instructions (only), then the previous response's whole context, its output, and this input.
An unknown, deleted or never-stored (``store: false``) id is 400 ``previous_response_not_found``.

Tenants (auth.py): with API keys configured, every route but /health needs one, and a stored
response belongs to the key that made it. Another key's GET, input_items, DELETE and cancel get
the same 404 as an unknown id; its ``previous_response_id`` gets the same 400
``previous_response_not_found`` as an unknown id (what OpenAI answers for an unknown one, and
what the conformance suite checks): a foreign id is indistinguishable from one that never
existed, by status, code and message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from reference_gateway import compaction, native, translate
from reference_gateway.background import BackgroundRunner
from reference_gateway.config import DEFAULT_UPSTREAM, GatewayConfig
from reference_gateway.emitter import Emitter
from reference_gateway.errors import APIError
from reference_gateway.params import CreateRequest, parse_create
from reference_gateway.pagination import item_page
from reference_gateway.auth import Keyring, RequireAPIKey, tenant
from reference_gateway.history import HistoryCache
from reference_gateway.store import PENDING, StoredResponse, open_store
from reference_gateway.upstream import Upstream
from reference_gateway.builtin.hosted import hosted_tools
from reference_gateway.builtin.loop import Builtins, ToolLoop, check_approvals
from reference_gateway.builtin.mcp_client import McpClient
from reference_gateway import observe

log = logging.getLogger("reference_gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"
# The events after which the Response object is final (stored before they are sent).
FINAL_EVENTS = frozenset({"error", "response.completed", "response.incomplete", "response.failed"})
DONE = b"data: [DONE]\n\n"


@dataclasses.dataclass
class Turn:
    """One create request, validated and resolved (``prepare``), before any upstream call."""

    req: CreateRequest
    owner: str
    upstream: Upstream
    api_kind: str
    context: list[dict]  # the input after previous_response_id expansion
    hosted: object  # builtin.hosted.Hosted: the built-in tools of the request
    messages: list[dict]  # the chat upstream's view of ``context``
    response: dict  # the Response object, in_progress (or queued)
    keep: Callable[[dict], None]  # stores a final response (when ``store``), and caches it


def open_code_sandbox(config: GatewayConfig):
    """The code interpreter's sandbox for ``config.code_interpreter``, or None (none runs).
    "auto" spawns one when the Pyodide sandbox is installed; "spawn" and "external" that cannot
    start raise ``SandboxError`` (one line: what to install or which URL failed)."""
    if config.code_interpreter == "disabled":
        return None
    from reference_gateway.sandbox import SandboxError, open_sandbox

    if config.code_interpreter == "auto":
        try:
            return open_sandbox("spawn")
        except SandboxError:
            return None
    return open_sandbox(config.code_interpreter, url=config.code_interpreter_url)


def sse(event: dict) -> bytes:
    """``event: <type>`` + ``data: <compact json>`` + blank line (WHATWG HTML, 9.2 SSE)."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


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


def parse_json_text(text: str) -> object:
    """JSON text (already decoded) as a value, or 400 ``invalid_json`` (see ``read_json``)."""

    def no_constant(name: str) -> None:  # NaN and Infinity are not JSON (RFC 8259, section 6)
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise APIError(400, "The request body is not valid JSON: it nests too deeply to parse.",
                       code="invalid_json") from None
    except ValueError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None


def create_app(config: GatewayConfig) -> Starlette:
    keyring = Keyring(config.api_keys)
    telemetry = observe.Telemetry(config)  # -- observability (issue 8): /metrics, JSON logs, traces
    store = open_store(config.store_location)
    history = HistoryCache(store, max_entries=config.history_cache_entries, ttl_s=config.history_cache_ttl_s)
    background = BackgroundRunner(store, orphan_after_s=config.orphan_after_s)
    upstreams: dict[str, Upstream] = {}  # created on the server's event loop, in lifespan (routing.py)
    sandbox = open_code_sandbox(config)
    builtins = Builtins(
        config=config.builtin, mcp=McpClient(), sandbox=sandbox,
        web_search=config.builtin.web_search_profiles.get(config.web_search_profile or ""),
        loop_timeout_s=config.tool_loop_timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for spec in config.upstream_specs:
            upstreams[spec.name] = Upstream(dataclasses.replace(config, upstream_url=spec.url,
                                                                upstream_api_key=spec.api_key, routes=None))
        telemetry.instrument_upstreams(upstreams.values())
        background.watch()  # this process's lease in the store, and the orphan sweep
        try:
            yield
        finally:
            await background.shutdown()
            for one in upstreams.values():
                await one.aclose()
            if sandbox is not None:
                sandbox.close()
            store.close()

    def conversation(req: CreateRequest, owner: str,
                     cached: Callable[[str], StoredResponse | None] | None = None) -> list[dict]:
        """The stored chain (if any, and ``owner``'s) followed by this request's input items.
        ``cached``: a WebSocket's own cache, asked before the store (websocket.py, rule 8)."""
        if req.previous_response_id is None:
            return list(req.input_items)
        previous = cached(req.previous_response_id) if cached is not None else None
        if previous is None:
            previous = history.record(req.previous_response_id, owner)
        if previous is None:
            raise APIError(
                400,
                f"Previous response with id '{req.previous_response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        if previous.body["status"] in PENDING:
            raise APIError(
                400,
                f"Previous response with id '{req.previous_response_id}' is still {previous.body['status']}.",
                param="previous_response_id",
                code="previous_response_in_progress",
            )
        return previous.context + previous.body["output"] + list(req.input_items)

    def route(model: str) -> tuple[Upstream, str]:
        """The upstream serving ``model`` (routing.py) and its api kind; 404 ``model_not_found``
        when none does."""
        if config.routes is None:
            return upstreams[DEFAULT_UPSTREAM], config.upstream_api_kind
        spec = config.routes.upstream_for(model)
        if spec is None:
            raise APIError(404, f"The model '{model}' does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        return upstreams[spec.name], spec.api_kind

    def prepare(body: object, owner: str, *, cached: Callable[[str], StoredResponse | None] | None = None,
                stream: bool = False) -> Turn:
        """Every check and lookup of a create request before any upstream call (``APIError``
        for what is refused), for HTTP and WebSocket alike. ``stream``: the response is
        streamed whatever the body says (a WebSocket turn always is)."""
        req = parse_create(body)
        if stream:
            req = dataclasses.replace(req, stream=True)
        upstream, api_kind = route(req.model)
        context = conversation(req, owner, cached)
        hosted = hosted_tools(req.tools.tools, [t["name"] for t in req.tools.functions], config=builtins.config,
                              code_interpreter=builtins.sandbox is not None,
                              web_search_profile=config.web_search_profile,
                              request_headers=dict(req.tools.mcp_headers))
        approvals = [n for n, i in enumerate(req.input_items) if i["type"] == "mcp_approval_response"]
        if approvals and not hosted.mcp:
            raise APIError(400, "An mcp_approval_response needs its mcp tool in 'tools' again.",
                           param=f"input[{approvals[0]}]", code="invalid_value")
        check_approvals(req, context)
        messages = translate.chat_messages(req.instructions, context)
        response = translate.new_response(req)
        observe.note_create(req, response)

        def keep(final: dict) -> None:
            if final["store"]:
                store.put(final, owner=owner, input_items=list(req.input_items), context=context)
                history.remember(StoredResponse(final, list(req.input_items), context), owner)

        return Turn(req, owner, upstream, api_kind, context, hosted, messages, response, keep)

    async def create(request: Request) -> Response:
        turn = prepare(await read_json(request, config.max_body_bytes), tenant(request))
        req, upstream, context, hosted, response, keep = (turn.req, turn.upstream, turn.context, turn.hosted,
                                                          turn.response, turn.keep)
        if req.stream:
            events, close = await open_events(turn)
            return StreamingResponse(sse_body(events), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS,
                                     background=BackgroundTask(close))  # also when the body never started
        if turn.api_kind == "responses":
            return await create_native(req, context, hosted, response, upstream, keep)
        if hosted:
            if req.background:
                raise APIError(400, "Background responses with built-in tools are not supported by this gateway.",
                               param="background", code="unsupported_parameter")
            loop = ToolLoop(req, Emitter(response), turn.messages, context, hosted, builtins, upstream)
            async for _ in loop.events():
                pass
            keep(loop.emitter.response)
            if loop.error_status is not None:  # the upstream failed, or the loop's deadline passed
                raise APIError(loop.error_status, loop.emitter.response["error"]["message"],
                               type="server_error", code=loop._error_code)
            return JSONResponse(loop.emitter.response)

        if req.background:
            keep(response)  # queued, before the client hears of it
            background.start(req, response, translate.chat_request(req, turn.messages, stream=False), upstream,
                             owner=turn.owner)
            return JSONResponse(response)
        completion = await upstream.complete(translate.chat_request(req, turn.messages, stream=False),
                                             truncation=req.truncation)
        translate.from_chat_completion(req, response, completion)
        keep(response)
        return JSONResponse(response)

    async def open_events(turn: Turn) -> tuple[AsyncIterator[dict], Callable[[], Awaitable[None]]]:
        """A streamed response's events as dicts, and what closes its upstream request (call it
        whatever happens, also when the events never started). The upstream stream is opened
        first: a refusal or an unreachable upstream is still an ``APIError`` (a proper status
        code over HTTP), since nothing has been committed to the client yet."""
        req, upstream, context, response, keep = turn.req, turn.upstream, turn.context, turn.response, turn.keep
        if turn.api_kind == "responses":
            refuse_for_native(req, turn.hosted)
            opened = await upstream.open_stream(native.native_request(req, context, stream=True), path="/responses")
            relay = native.Relay(response)
            return ended(stream_native(relay, opened, keep), relay, keep), opened.aclose
        if turn.hosted:
            loop = ToolLoop(req, Emitter(response), turn.messages, context, turn.hosted, builtins, upstream)
            return ended(stream_loop(loop, keep), loop.emitter, keep), nothing_to_close
        opened = await upstream.open_stream(translate.chat_request(req, turn.messages, stream=True),
                                            truncation=req.truncation)
        emitter = Emitter(response)
        return ended(stream_events(req, emitter, opened, keep), emitter, keep), opened.aclose

    async def sse_body(events: AsyncIterator[dict]) -> AsyncIterator[bytes]:
        """HTTP's framing of ``open_events``: each event as SSE, then ``[DONE]`` when configured."""
        try:
            async for event in events:
                yield sse(event)
            if config.done_sentinel:
                yield DONE
        finally:
            await events.aclose()  # a client gone: ``ended`` stores the response failed

    async def ended(body: AsyncIterator[dict], emitter: Emitter, keep) -> AsyncIterator[dict]:
        """``body``, ending the way every stream must, whatever happens: on a gateway bug the
        client still gets ``error`` then ``response.failed`` ("internal error"); when the client
        goes away first (the task is cancelled or the generator closed: nothing can be sent) the
        response is stored failed "The client disconnected ...". Never ``in_progress``."""
        try:
            async for event in body:
                yield event
        except Exception:
            if not emitter.running:
                raise
            log.exception("stream of %s failed", emitter.response["id"])
            events = emitter.fail("The gateway had an internal error.")
            keep(emitter.response)
            for event in events:
                yield event
        except BaseException:  # CancelledError or GeneratorExit: the client went away
            if emitter.running:
                emitter.fail("The client disconnected before the response finished.")
                keep(emitter.response)
            raise
        finally:
            await body.aclose()

    def refuse_for_native(req: CreateRequest, hosted) -> None:
        for present, param, what in ((bool(hosted), "tools", "built-in tools with a native Responses upstream"),
                                     (req.background, "background",
                                      "background responses with a native Responses upstream")):
            if present:
                raise APIError(400, f"This gateway does not support {what}.", param=param,
                               code="unsupported_parameter")

    async def create_native(req: CreateRequest, context: list[dict], hosted, response: dict, upstream: Upstream,
                            keep) -> Response:
        """In front of a native /v1/responses (native.py): the gateway keeps store, chains, GET.
        Non-streamed here; streamed through ``open_events``."""
        refuse_for_native(req, hosted)
        native.finish(response, await upstream.respond(native.native_request(req, context, stream=False)))
        keep(response)
        return JSONResponse(response)

    async def stream_native(relay, opened, keep) -> AsyncIterator[dict]:
        kept = False
        try:
            async for event in relay.events(opened):
                if not kept and event["type"] in FINAL_EVENTS:
                    keep(relay.response)
                    kept = True
                yield event
        finally:
            await opened.aclose()

    async def stream_events(req: CreateRequest, emitter: Emitter, opened, keep) -> AsyncIterator[dict]:
        """The event stream. Every way it can end stores (when ``store``) a terminal response:
        completed/incomplete; failed with the upstream's error (``error`` then
        ``response.failed`` are sent); and, through ``ended``, a gateway bug or a client gone.
        The upstream request is closed in ``finally``."""
        try:
            for event in emitter.start():
                yield event
            finish_reason, chat_usage = None, None
            try:
                async for chunk in opened.chunks():
                    chat_usage = chunk.get("usage") or chat_usage
                    for choice in chunk.get("choices") or []:
                        for event in emitter.chat_delta(choice.get("delta") or {}):
                            yield event
                        finish_reason = choice.get("finish_reason") or finish_reason
            except APIError as exc:
                events = emitter.fail(exc.message, code=exc.code or "server_error")
            else:
                disallowed = req.tools.disallowed_calls(emitter.called_names())
                if disallowed:
                    events = emitter.fail(translate.disallowed_message(disallowed), code="tool_not_allowed")
                elif finish_reason is None:  # the body ended (or sent [DONE]) mid-answer: truncated
                    observe.upstream_failed("protocol")
                    events = emitter.fail("Upstream error: the stream ended before its finish_reason.",
                                          code="upstream_error")
                else:
                    events = emitter.finish(finish_reason, chat_usage)
            keep(emitter.response)  # stored before the terminal event: a GET right after sees it
            for event in events:
                yield event
        finally:
            await opened.aclose()

    async def stream_loop(loop: ToolLoop, keep) -> AsyncIterator[dict]:
        """The event stream of a response with built-in tools (builtin/loop.py), stored once,
        when final: before its ``error`` or terminal event is sent (and through ``ended``)."""
        kept = False
        async for event in loop.events():
            if not kept and event["type"] in FINAL_EVENTS:
                keep(loop.emitter.response)
                kept = True
            yield event

    async def compact(request: Request) -> Response:
        """``POST /v1/responses/compact`` (compaction.py): the conversation as one item."""
        body = compaction.check_params(await read_json(request, config.max_body_bytes))
        items = compaction.input_items(body)
        if body.get("previous_response_id") is not None:
            previous = history.record(body["previous_response_id"], tenant(request))
            if previous is None:
                raise APIError(400, f"Previous response with id '{body['previous_response_id']}' not found.",
                               param="previous_response_id", code="previous_response_not_found")
            items = previous.context + previous.body["output"] + items
        if not items:
            raise APIError(400, "Nothing to compact: give 'input' or 'previous_response_id'.", param="input",
                           code="missing_required_parameter")
        return JSONResponse(compaction.compacted(compaction.expand(items)))

    async def retrieve(request: Request) -> Response:
        response = store.get(request.path_params["response_id"], tenant(request))
        if response is None:
            raise not_found(request.path_params["response_id"])
        return JSONResponse(response)

    async def input_items(request: Request) -> Response:
        record = store.record(request.path_params["response_id"], tenant(request))
        if record is None:
            raise not_found(request.path_params["response_id"])
        return JSONResponse(item_page(record.input_items, request.query_params))

    async def delete(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        history.forget(response_id, tenant(request))
        if not store.delete(response_id, tenant(request)):
            raise not_found(response_id)
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    async def cancel(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        cancelled = background.cancel(response_id, tenant(request))
        if cancelled is None:
            raise not_found(response_id)
        return JSONResponse(cancelled)

    async def models(request: Request) -> Response:
        if config.models:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "reference-gateway"} for m in config.models]
            return JSONResponse({"object": "list", "data": data})
        if config.routes is None:
            return JSONResponse(await upstreams[DEFAULT_UPSTREAM].models())
        return JSONResponse(await union_of_models())

    async def union_of_models() -> dict:
        """Every model some route sends to the upstream that lists it, plus the exact route names."""
        data: dict[str, dict] = {}
        for name, one in upstreams.items():
            try:
                listed = (await one.models()).get("data") or []
            except APIError as exc:
                log.warning("upstream %s left out of /v1/models: %s", name, exc.message)
                continue
            for model in listed:
                if isinstance(model, dict) and isinstance(model.get("id"), str) \
                        and config.routes.routes_to(model["id"], name):
                    data.setdefault(model["id"], model)
        for rule in config.routes.routes:
            if rule.model is not None:
                data.setdefault(rule.model, {"id": rule.model, "object": "model", "created": 0, "owned_by": rule.upstream})
        return {"object": "list", "data": list(data.values())}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # websocket.py imports this module: imported here, not at the top.
    from reference_gateway.websocket import ResponsesSocket

    routes = [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/compact", compact, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        *telemetry.routes(),
        # Starlette matches websocket scopes apart from http ones: both live on one path.
        WebSocketRoute("/v1/responses", ResponsesSocket.endpoint(
            keyring=keyring, prepare=prepare, open_events=open_events, telemetry=telemetry,
            max_connection_s=config.ws_max_connection_s, max_frame_bytes=config.max_body_bytes)),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=ERROR_HANDLERS,
                     middleware=[*telemetry.middleware(routes), Middleware(RequireAPIKey, keyring=keyring)])


async def nothing_to_close() -> None:
    """The close of a stream with no upstream request of its own (a tool loop closes its own)."""


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
