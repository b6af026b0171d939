"""OpenTelemetry traces, when an exporter is configured and the SDK is installed.

On when ``OTEL_TRACES_EXPORTER`` names an exporter (not ``none``) or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless
``OTEL_SDK_DISABLED=true``; and the ``otel`` extra is installed (``pip install -e '.[otel]'``:
opentelemetry-sdk and the OTLP/HTTP exporter). Exporters: ``otlp`` (the default; HTTP/protobuf,
or gRPC when ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc`` and its exporter package is there),
``console``; the exporters read their other ``OTEL_*`` settings (endpoint, headers, timeout)
themselves. ``service.name`` is ``reference-gateway`` unless ``OTEL_SERVICE_NAME`` says
otherwise. Asked for but not installed: one warning at start, and no tracing.

Spans (names and attributes follow OpenTelemetry's HTTP and GenAI semantic conventions where
they have one):

- per request, SERVER: ``{method} {route}`` (``POST /v1/responses``), with ``http.*``
  attributes and, for a create, ``gen_ai.request.model``, ``gen_ai.response.id``,
  ``gateway.stream`` and ``gateway.response.status`` (the Response's final status). A
  ``traceparent`` header from the client makes it a child of the client's span. Upstream
  errors are events on it (``upstream_error``, attribute ``kind``).
- per upstream HTTP call, CLIENT, child of the request's span: ``{method} {path}``
  (``POST /v1/chat/completions``), from sending to the end of the answer's body (the whole
  stream, for a streamed call), ``traceparent`` sent along so a traced upstream (vLLM) joins.
- per built-in tool call, INTERNAL, child of the request's span: ``execute_tool {tool}``, from
  its item's ``output_item.added`` to its ``.done``, with ``gen_ai.tool.*`` and the outcome.

Off (nothing configured, or nothing installed), ``open_tracing`` returns None, nothing of
OpenTelemetry is imported, and every hook costs one ``if``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

log = logging.getLogger("reference_gateway")

SERVICE_NAME = "reference-gateway"
ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
# W3C Trace Context (and baggage) headers a client may send (https://www.w3.org/TR/trace-context/).
PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


def requested(env: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether the environment asks for traces (module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get(EXPORTER_ENV, "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(env.get(name) for name in ENDPOINT_ENV)


def _exporters(env) -> list:
    names = [n.strip() for n in (env.get(EXPORTER_ENV) or "otlp").lower().split(",") if n.strip()]
    exporters = []
    # Deferred (optional): each exporter's package loads only when tracing is on and names it.
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                        or "http/protobuf").strip().lower()
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            exporters.append(OTLPSpanExporter())
        elif name != "none":
            log.warning("%s=%s: unknown exporter %r ignored (this gateway knows otlp and console)",
                        EXPORTER_ENV, env.get(EXPORTER_ENV), name)
    return exporters


def provider_from_environment(env=os.environ):
    """A TracerProvider exporting as the environment says, or None (not asked, not installed)."""
    if not requested(env):
        return None
    try:
        # Deferred (optional): OpenTelemetry loads only when tracing is on; absent, an ImportError.
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporters = _exporters(env)
    except ImportError as exc:
        log.warning("traces were asked for (OTEL_* is set) but %s is not installed: no tracing "
                    "(pip install -e '.[otel]')", exc.name or exc)
        return None
    if not exporters:
        return None
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def open_tracing(provider: Any = None) -> Tracing | None:
    """Tracing through ``provider`` (a TracerProvider the caller owns, e.g. a test's in-memory
    one), else through one the environment configures (owned: flushed at ``close``), else None."""
    owned = provider is None
    if provider is None:
        provider = provider_from_environment()
    if provider is None:
        return None
    return Tracing(provider, owned=owned)


class Tracing:
    """The spans of one gateway."""

    def __init__(self, provider: Any, *, owned: bool) -> None:
        # Deferred (optional): OpenTelemetry loads only when tracing is on.
        from opentelemetry import context, propagate, trace

        try:
            release = version("responses-conformance")
        except PackageNotFoundError:
            release = None
        self._provider, self._owned = provider, owned
        self._tracer = provider.get_tracer("reference_gateway", release)
        self._trace, self._context, self._propagate = trace, context, propagate

    # -- the request --------------------------------------------------------------------------

    def start_request(self, scope: dict) -> tuple[Any, object]:
        """The request's span, made current (children inherit it, tasks started from it too)."""
        trace = self._trace
        carrier = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope.get("headers") or () if name in PROPAGATED}
        parent = self._propagate.extract(carrier) if carrier else None
        method = scope.get("method", "")
        span = self._tracer.start_span(f"{method} {scope.get('path', '')}", context=parent,
                                       kind=trace.SpanKind.SERVER,
                                       attributes={"http.request.method": method, "url.path": scope.get("path", ""),
                                                   "url.scheme": scope.get("scheme", "http")})
        token = self._context.attach(trace.set_span_in_context(span, parent))
        return span, token

    def end_request(self, span: Any, token: object, *, method: str, route: str, status: int, info: Any) -> None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        failed = status >= 500
        if info.response_id is not None:
            span.set_attribute("gen_ai.response.id", info.response_id)
        if info.model is not None:
            span.set_attribute("gen_ai.request.model", info.model)
            span.set_attribute("gateway.stream", bool(info.stream))
        if info.response is not None:
            span.set_attribute("gateway.response.status", str(info.response.get("status")))
            failed = failed or info.response.get("status") == "failed"
        if failed:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()
        self._context.detach(token)

    def upstream_failed(self, kind: str) -> None:
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event("upstream_error", {"kind": kind})

    # -- built-in tool calls ------------------------------------------------------------------

    def start_tool(self, item: dict) -> Any:
        kind = item["type"]
        tool = item.get("name") if kind == "mcp_call" else kind.removesuffix("_call")
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": str(tool),
                      "gen_ai.tool.call.id": item["id"], "gateway.tool.kind": kind}
        if kind == "mcp_call":
            attributes["gateway.mcp.server_label"] = item.get("server_label") or ""
        return self._tracer.start_span(f"execute_tool {tool}", kind=self._trace.SpanKind.INTERNAL,
                                       attributes=attributes)

    def end_tool(self, span: Any, item: dict) -> None:
        span.set_attribute("gateway.tool.outcome", str(item.get("status")))
        if item.get("status") == "failed":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()

    # -- upstream calls -----------------------------------------------------------------------

    def instrument(self, clients: Iterable[httpx.AsyncClient]) -> None:
        """A CLIENT span around every request these clients send (their transports wrapped:
        httpx has no public hook that sees a request end, stream included)."""
        for client in clients:
            client._transport = _TracedTransport(client._transport, self)
            client._mounts = {pattern: None if transport is None else _TracedTransport(transport, self)
                              for pattern, transport in client._mounts.items()}

    def close(self) -> None:
        if self._owned:
            self._provider.shutdown()


class _TracedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, tracing: Tracing) -> None:
        self._inner, self._tracing = inner, tracing

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        trace = self._tracing._trace
        url = request.url
        span = self._tracing._tracer.start_span(
            f"{request.method} {url.path}", kind=trace.SpanKind.CLIENT,
            attributes={"http.request.method": request.method, "url.full": str(url.copy_with(query=None)),
                        "server.address": url.host, "server.port": url.port or (443 if url.scheme == "https" else 80)})
        self._tracing._propagate.inject(request.headers, context=trace.set_span_in_context(span))
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as exc:
            _failed(trace, span, exc)
            span.end()
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 400:
            span.set_attribute("error.type", str(response.status_code))
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        response.stream = _SpanEndingStream(response.stream, span, trace)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self):
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._inner.__aexit__(*exc_info)


class _SpanEndingStream(httpx.AsyncByteStream):
    """The answer's body; its span ends when the body is closed (read to the end or not)."""

    def __init__(self, inner, span: Any, trace) -> None:
        self._inner, self._span, self._trace = inner, span, trace

    async def __aiter__(self):
        try:
            async for part in self._inner:
                yield part
        except BaseException as exc:
            _failed(self._trace, self._span, exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._span.end()


def _failed(trace, span: Any, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__qualname__)
    if isinstance(exc, Exception):
        span.record_exception(exc)
    span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
