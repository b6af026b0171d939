"""The ``external`` mode: the gateway asks a sandbox service over HTTP.

The protocol (version 1), all JSON, UTF-8:

``POST {base}/execute``  body ``{"code": str, "timeout_s": float (optional, > 0)}``

- ``200`` ``{"logs": str, "error": str | null, "timed_out": bool, "duration_s": float}``: the
  cell ran, whatever it did (the fields of :class:`SandboxResult`; contract.py says what they
  hold). A service caps ``timeout_s`` at its own maximum by refusing larger values.
- ``400`` ``{"error": str}``: the request is malformed (not JSON, ``code`` not a string,
  ``timeout_s`` not a positive number or above the service's maximum).
- ``413`` ``{"error": str}``: the body is larger than the service accepts.
- ``503`` ``{"error": str}``: the service's own sandbox cannot run (not installed).

``GET {base}/health`` -> ``200`` ``{"status": "ok", "protocol": 1, "limits": {...}}``.

Any other status, or no answer, is the service failing: the client raises
:class:`SandboxError`, as the contract asks for "the sandbox itself cannot run".
``python -m reference_gateway.sandbox serve`` (service.py) implements this over the spawn
mode. The client opens one httpx client per call: ``close()`` is synchronous in the contract
and an ``httpx.AsyncClient`` can only be closed from the event loop, while a loopback
connection costs well under a millisecond beside a cell's ~2 s.
"""

from __future__ import annotations

import httpx

from .contract import CodeSandbox, SandboxError, SandboxLimits, SandboxResult
from .spawn import STARTUP_TIMEOUT_S

PROTOCOL_VERSION = 1
# The client waits for the cell's own timeout, the service's Pyodide load, and this for the
# network and the service's queue (a service with busy slots makes a cell wait its turn).
NETWORK_MARGIN_S = 30.0
# Connecting to the service at all: a loopback or LAN service answers in milliseconds.
CONNECT_TIMEOUT_S = 10.0


class ExternalSandbox(CodeSandbox):
    """A client of a sandbox service that speaks the protocol above."""

    def __init__(self, url: str, *, limits: SandboxLimits | None = None) -> None:
        self.url = url.rstrip("/")
        self.limits = limits or SandboxLimits()
        self._closed = False

    async def run(self, code: str, *, timeout_s: float | None = None) -> SandboxResult:
        if self._closed:
            raise SandboxError("the code sandbox is closed")
        timeout = self.limits.timeout_s if timeout_s is None else float(timeout_s)
        deadline = timeout + STARTUP_TIMEOUT_S + NETWORK_MARGIN_S
        try:
            async with httpx.AsyncClient(
                    timeout=httpx.Timeout(deadline, connect=CONNECT_TIMEOUT_S)) as client:
                reply = await client.post(f"{self.url}/execute",
                                          json={"code": code, "timeout_s": timeout})
        except httpx.HTTPError as exc:
            raise SandboxError(
                f"code sandbox service {self.url} unreachable: {type(exc).__name__}: {exc}"
            ) from None
        if reply.status_code != 200:
            raise SandboxError(
                f"code sandbox service {self.url} answered {reply.status_code}: "
                f"{_error_text(reply)}")
        try:
            body = reply.json()
            return SandboxResult(logs=str(body["logs"]),
                                 error=None if body["error"] is None else str(body["error"]),
                                 timed_out=bool(body["timed_out"]),
                                 duration_s=float(body["duration_s"]))
        except (ValueError, KeyError, TypeError):
            raise SandboxError(
                f"code sandbox service {self.url} sent a body that is not protocol "
                f"{PROTOCOL_VERSION}: {reply.text[:200]!r}") from None

    def close(self) -> None:
        self._closed = True


def _error_text(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["error"]).splitlines()[0]
    except (ValueError, KeyError, TypeError, IndexError):
        return reply.text[:200].replace("\n", " ")
