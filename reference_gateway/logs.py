"""Structured logs: ``--log-format json`` writes one JSON object per line on stderr.

Each line has ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``, then where
known ``response_id``, ``route``, ``method``, ``status``, ``duration_ms``, and ``exception`` (the
formatted traceback) for ``log.exception`` lines. An access line per request comes from the
logger ``reference_gateway.access`` (observe.py); the response id of the request being served
is added to every line logged while serving it (the gateway's ``log.exception`` lines included)
through the context variable of request_context.py (set by observe.py).

``text`` (the default) configures nothing: uvicorn prints its own lines (its access log
included) as it always did. Nothing here runs at import: ``configure`` is called by
``__main__`` and by ``create_app`` for a config that asks for json.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from reference_gateway.request_context import current_response_id

LOG_FORMATS = ("text", "json")
ACCESS_LOGGER = "reference_gateway.access"
# Attributes a record may carry (``extra=``) that a JSON line includes when they are set.
FIELDS = ("response_id", "route", "method", "status", "duration_ms")
# uvicorn's loggers, which its default config gives text handlers of their own.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Libraries that log every HTTP request they make at INFO (httpx: one line per upstream call),
# kept to WARNING unless their level was set: the access line already says what happened.
CHATTY_LOGGERS = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON. ``context`` returns the response id of the request being
    served, or None, for records that do not name one themselves."""

    def __init__(self, *, context: Callable[[], str | None] | None = None) -> None:
        super().__init__()
        self._context = context

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        line: dict = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if "response_id" not in line and self._context is not None:
            response_id = self._context()
            if response_id is not None:
                line["response_id"] = response_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (as logging's own last-resort handler),
    so a test's captured stderr, or a replaced one, is never a stale stream."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def check_format(log_format: str) -> None:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")


def configure(log_format: str) -> None:
    """For ``json``: one JSON handler on the root logger at INFO (replacing one installed by an
    earlier call), uvicorn's loggers handing their records to it, uvicorn's access log off,
    and httpx's line per request too (``CHATTY_LOGGERS``). ``text``: nothing."""
    check_format(log_format)
    if log_format != "json":
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter(context=current_response_id))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        # uvicorn's access log off (the gateway writes its own, with the response id): a logger
        # with no handler that does not propagate makes uvicorn skip it (``hasHandlers()``).
        logger.propagate = name != "uvicorn.access"
    for name in CHATTY_LOGGERS:
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)


def uvicorn_options(log_format: str) -> dict:
    """What ``uvicorn.run`` needs for ``log_format``: for json, no logging config of its own
    (its records go to the root's JSON handler) and no access log (the gateway writes its own,
    with the response id)."""
    if log_format == "json":
        return {"log_config": None, "access_log": False}
    return {}


def announcer(log_format: str) -> Callable[[str], None]:
    """How ``__main__`` says a line before serving: printed on stderr, or logged as JSON."""
    if log_format == "json":
        return logging.getLogger("reference_gateway").info
    return lambda line: print(line, file=sys.stderr)
