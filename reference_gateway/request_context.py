"""The request being served, as a context variable: observe.py sets it, logs.py reads it.

It lives apart from both because each needs it and observe.py also needs logs.py (its access
logger, ``logs.configure``): with the variable in observe.py, logs.py had to import observe.py
back from inside ``configure``. Tasks started while serving a request (the stream's body, a
background response) inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestInfo:
    """What the app told about the request being served. ``telemetry`` is observe.py's
    ``Telemetry`` (not imported here: observe.py imports this module)."""

    __slots__ = ("telemetry", "response", "response_id", "model", "stream")

    def __init__(self, telemetry) -> None:
        self.telemetry = telemetry
        self.response: dict | None = None  # the Response object, final once the request ends
        self.response_id: str | None = None
        self.model: str | None = None
        self.stream = False


CURRENT: ContextVar[RequestInfo | None] = ContextVar("reference_gateway_request", default=None)


def current_response_id() -> str | None:
    info = CURRENT.get()
    return None if info is None else info.response_id
