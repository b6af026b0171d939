"""One request, observed: timed, counted (metrics.py), logged (logs.py) and traced (tracing.py).

``Telemetry`` is what ``create_app`` builds from the config's observability fields; it gives
the app its ``/metrics`` route and the ASGI middleware ``ObserveRequests``, which sits outside
authentication (a 401 is counted too) and sees every request from its arrival to its last byte:

- its status from ``http.response.start``; an event stream (``text/event-stream``) counts in
  the in-flight gauge until the request ends;
- the time to first token, when a body chunk carries the first output delta event
  (``FIRST_DELTA``; scanned only until it is found, then one flag test per chunk);
- at the end: the request counter by route template, the create duration, the access log line
  and the request's span.

What only the app knows reaches it through ``CURRENT`` (request_context.py), a context variable
holding the ``RequestInfo`` of the request being served (tasks started while serving it, the
stream's body and a background response included, inherit it): ``note_create`` (gateway.py,
once the response id exists), ``upstream_failed`` (upstream.py, where its errors are built) and ``tool_call``
(builtin/loop.py, around each hosted call). Outside a request, or with nothing observed, each
of them is one context-variable read and an ``if``.

With metrics off, text logs and no tracing, no middleware is installed at all.

WebSocket mode (websocket.py) passes by the middleware (it sees http scopes only); each turn
is counted by ``Telemetry.websocket_turn`` in the request counter, route ``/v1/responses``,
method ``WEBSOCKET``, status 200 for a turn that created a response (whatever its end), else
the status of its error event. No duration, time to first token, access line or span.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from reference_gateway import logs
from reference_gateway.metrics import GatewayMetrics
from reference_gateway.request_context import CURRENT, RequestInfo
from reference_gateway.tracing import open_tracing

CREATE_ROUTE = "/v1/responses"
METRICS_ROUTE = "/metrics"
# The delta events that carry output: text (and refusal), reasoning, and a tool's arguments
# (function calls, MCP calls, the code of a code_interpreter call). The first one sent ends
# the time to first token. Matched on the SSE ``event:`` line app.py writes for each event.
FIRST_DELTA = re.compile(rb"event: response\.(?:output_text|refusal|reasoning_text|reasoning_summary_text"
                         rb"|function_call_arguments|mcp_call_arguments|code_interpreter_call_code)\.delta\n")
# The status counted for a request whose client went away before any response started
# (nginx's 499 "client closed request"); an error with nothing sent is a 500.
CLIENT_GONE = 499


def note_create(req: Any, response: dict) -> None:
    """A create request got its Response object (its id, model and ``stream`` are known)."""
    info = CURRENT.get()
    if info is not None:
        info.response, info.response_id, info.model, info.stream = response, response["id"], req.model, req.stream


def upstream_failed(kind: str) -> None:
    """An upstream call failed, of a kind of ``metrics.UPSTREAM_ERROR_KINDS``."""
    info = CURRENT.get()
    if info is None:
        return
    telemetry = info.telemetry
    if telemetry.metrics is not None:
        telemetry.metrics.upstream_errors.labels(kind).inc()
    if telemetry.tracing is not None:
        telemetry.tracing.upstream_failed(kind)


class ToolWatch:
    """One hosted tool call, from its item's opening to ``closed(item)``."""

    __slots__ = ("_span", "_telemetry")

    def __init__(self, telemetry: Telemetry | None, span: Any) -> None:
        self._telemetry, self._span = telemetry, span

    def closed(self, item: dict) -> None:
        telemetry = self._telemetry
        if telemetry is None:
            return
        if telemetry.metrics is not None:
            telemetry.metrics.builtin_calls.labels(item["type"], str(item.get("status"))).inc()
        if self._span is not None:
            telemetry.tracing.end_tool(self._span, item)


_UNWATCHED = ToolWatch(None, None)


def tool_call(item: dict) -> ToolWatch:
    """A hosted call's item (``mcp_call``, ``code_interpreter_call``, ``web_search_call``) opens."""
    info = CURRENT.get()
    if info is None:
        return _UNWATCHED
    tracing = info.telemetry.tracing
    return ToolWatch(info.telemetry, tracing.start_tool(item) if tracing is not None else None)


class Telemetry:
    """The metrics, logs and traces of one gateway, as its config asks."""

    def __init__(self, config: Any) -> None:
        self.metrics = GatewayMetrics() if config.metrics else None
        self.tracing = open_tracing(config.tracer_provider)
        self.json_logs = config.log_format == "json"
        if self.json_logs:
            logs.configure("json")
        self.access = logging.getLogger(logs.ACCESS_LOGGER)

    @property
    def active(self) -> bool:
        return self.metrics is not None or self.tracing is not None or self.json_logs

    def routes(self) -> list[Route]:
        return [Route(METRICS_ROUTE, self.scrape, methods=["GET"])] if self.metrics is not None else []

    def middleware(self, routes: list) -> list[Middleware]:
        return [Middleware(ObserveRequests, telemetry=self, routes=routes)] if self.active else []

    def instrument_upstreams(self, upstreams: Iterable[Any]) -> None:
        """Spans around the upstream clients' calls (no-op without tracing)."""
        if self.tracing is not None:
            upstreams = list(upstreams)
            for upstream in upstreams:
                upstream.wire = None  # streamed calls through httpx too, so that they have spans
            self.tracing.instrument(client for upstream in upstreams for client in upstream.clients)

    def websocket_turn(self, status: int) -> None:
        """One WebSocket turn ended (see the module docstring)."""
        if self.metrics is not None:
            self.metrics.requests.labels(CREATE_ROUTE, "WEBSOCKET", str(status)).inc()

    async def scrape(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            self.tracing.close()


def _is_event_stream(message: dict) -> bool:
    for name, value in message.get("headers") or ():
        if name == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


class ObserveRequests:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app, *, telemetry: Telemetry, routes: list) -> None:
        self.app = app
        self.telemetry = telemetry
        self.routes = routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self._at_shutdown(send)
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        telemetry = self.telemetry
        metrics, tracing = telemetry.metrics, telemetry.tracing
        info = RequestInfo(telemetry)
        CURRENT.set(info)  # the request's own task: never reset, so the 500 handler's log line has it too
        traced = tracing.start_request(scope) if tracing is not None else None
        status = 0
        event_stream = scanning = False

        async def observed(message: dict) -> None:
            nonlocal status, event_stream, scanning
            if scanning:
                if message["type"] == "http.response.body" and FIRST_DELTA.search(message.get("body", b"")):
                    scanning = False
                    await send(message)
                    if metrics is not None:
                        metrics.ttft.observe(perf_counter() - started)
                    return
            elif message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message):
                    event_stream = scanning = True
                    if metrics is not None:
                        metrics.streams_in_flight.inc()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except BaseException as exc:
            if status == 0:
                status = CLIENT_GONE if isinstance(exc, asyncio.CancelledError) else 500
            raise
        finally:
            if event_stream and metrics is not None:
                metrics.streams_in_flight.dec()
            self._done(scope, info, status, perf_counter() - started, traced)

    def _route(self, scope: dict) -> str:
        """The route template that served the request (set by Starlette's router), or the one
        that would have (a request stopped before routing: a 401), or ``other``."""
        route = scope.get("route")
        if route is not None:
            return getattr(route, "path", "other")
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                return candidate.path
        return "other"

    def _done(self, scope: dict, info: RequestInfo, status: int, elapsed: float, traced) -> None:
        telemetry = self.telemetry
        route, method = self._route(scope), scope["method"]
        if info.response_id is None:
            info.response_id = (scope.get("path_params") or {}).get("response_id")
        metrics = telemetry.metrics
        if metrics is not None:
            metrics.requests.labels(route, method, str(status)).inc()
            if route == CREATE_ROUTE and method == "POST":
                metrics.duration.labels("yes" if info.stream else "no").observe(elapsed)
        if traced is not None:
            telemetry.tracing.end_request(*traced, method=method, route=route, status=status, info=info)
        access = telemetry.access
        if access.isEnabledFor(logging.INFO):
            duration_ms = round(elapsed * 1000, 3)
            access.info("%s %s %d %.1f ms", method, scope.get("path", ""), status, duration_ms,
                        extra={"route": route, "method": method, "status": status, "duration_ms": duration_ms,
                               "response_id": info.response_id})

    def _at_shutdown(self, send):
        async def observed(message: dict) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.telemetry.close()
            await send(message)

        return observed
