"""The sandbox service: external.py's protocol served over a :class:`CodeSandbox` (spawn mode).

``python -m reference_gateway.sandbox serve --port P`` runs it, so that a gateway in
``external`` mode can be pointed at a real server (and tested against one). It binds loopback
by default and has no authentication: put it on a host or network namespace of its own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .contract import CodeSandbox, SandboxError
from .external import PROTOCOL_VERSION
from .spawn import MAX_CODE_BYTES

# A request is the code plus a little JSON: the cell's own cap, and room for the envelope and
# JSON escaping (worst case 6 bytes per character is not worth allowing).
MAX_REQUEST_BYTES = MAX_CODE_BYTES + 64 * 1024
# The longest cell a caller may ask for; the gateway's default is 10 s (contract.py).
DEFAULT_MAX_TIMEOUT_S = 120.0


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(sandbox: CodeSandbox, *, max_timeout_s: float = DEFAULT_MAX_TIMEOUT_S) -> Starlette:
    """The service's ASGI app; ``sandbox`` is shared by all requests and closed at shutdown."""

    async def execute(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return _refuse(413, f"request body over {MAX_REQUEST_BYTES} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return _refuse(413, f"request body over {MAX_REQUEST_BYTES} bytes")
        try:
            payload = json.loads(body)
        except ValueError:
            return _refuse(400, "the body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("code"), str):
            return _refuse(400, "'code' must be a string")
        timeout = payload.get("timeout_s")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float))
                                    or not 0 < timeout <= max_timeout_s):
            return _refuse(400, f"'timeout_s' must be a number in (0, {max_timeout_s:g}]")
        try:
            result = await sandbox.run(payload["code"], timeout_s=timeout)
        except SandboxError as exc:
            return _refuse(503, str(exc))
        return JSONResponse({"logs": result.logs, "error": result.error,
                             "timed_out": result.timed_out, "duration_s": result.duration_s})

    async def health(request: Request) -> JSONResponse:
        limits = getattr(sandbox, "limits", None)
        return JSONResponse({"status": "ok", "protocol": PROTOCOL_VERSION,
                             "limits": dict(vars(limits)) if limits else {},
                             "max_timeout_s": max_timeout_s})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sandbox.aclose()

    return Starlette(routes=[Route("/execute", execute, methods=["POST"]),
                             Route("/health", health, methods=["GET"])],
                     lifespan=lifespan)
