"""Wait for the upstream before serving (``python -m reference_gateway``, flags
``--upstream-wait SECONDS`` and ``--upstream-poll-interval SECONDS``).

A GPU server takes minutes to load its model and is not listening meanwhile; a gateway started
beside it (docker compose, a CI job) would answer 502 to everything until then. So the gateway
polls the upstream first and serves only once it answers, or gives up with one line that says
what it tried.

Ready means: ``GET {upstream}/models`` answers 2xx; or, for a server with no model list, it
answers 404/405 and ``GET {origin}/health`` answers 2xx. Not yet ready: a refused or failed
connection, no answer within the attempt's timeout, a 5xx, 429, or any other status: try again
every ``interval_s`` until ``wait_s`` has passed. 401 and 403 mean the upstream rejects the
gateway's key: waiting cannot help, so it gives up at once and names ``--upstream-api-key``.

Each attempt has its own timeout (``ATTEMPT_TIMEOUT_S`` at most, never past the deadline by more
than ``MIN_ATTEMPT_TIMEOUT_S``), so a host that swallows packets cannot stretch the wait.
``--upstream-wait 0`` skips the wait: the gateway serves at once and answers 502 until the
upstream is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

# One attempt's timeout: a model server that is up answers GET /models in milliseconds; one
# that takes longer is loaded enough to be worth another try, not a long wait on one socket.
ATTEMPT_TIMEOUT_S = 5.0
MIN_ATTEMPT_TIMEOUT_S = 0.2


class UpstreamNotReady(RuntimeError):
    """The upstream did not become ready; the message is one line for the operator."""


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        return "connection refused" if "refused" in text.lower() else f"cannot connect ({text or 'ConnectError'})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def wait_for_upstream(
    upstream_url: str,
    *,
    wait_s: float,
    interval_s: float,
    api_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    notify: Callable[[str], None] | None = None,
) -> int:
    """Return the number of attempts it took once the upstream is ready; raise
    ``UpstreamNotReady`` when ``wait_s`` passes first (or at once on 401/403). ``notify`` gets
    one line after the first failed attempt, so an operator knows why nothing is served yet."""
    base = upstream_url.rstrip("/")
    parts = urlsplit(base)
    models_url = f"{base}/models"
    health_url = f"{parts.scheme}://{parts.netloc}/health"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    started = clock()
    deadline = started + wait_s
    attempts, last = 0, "nothing"
    with httpx.Client(headers=headers) as client:
        while True:
            attempts += 1
            timeout = max(min(deadline - clock(), ATTEMPT_TIMEOUT_S), MIN_ATTEMPT_TIMEOUT_S)
            try:
                status = client.get(models_url, timeout=timeout).status_code
                last = f"HTTP {status}"
                if 200 <= status < 300:
                    return attempts
                if status in (401, 403):
                    raise UpstreamNotReady(
                        f"upstream {base} refused the gateway: GET {models_url} answered {last}; "
                        "check --upstream-api-key"
                    )
                if status in (404, 405):
                    health = client.get(health_url, timeout=timeout).status_code
                    if 200 <= health < 300:
                        return attempts
                    last = f"HTTP {status}, and GET {health_url} answered HTTP {health}"
            except httpx.HTTPError as exc:
                last = _describe(exc, timeout)
            now = clock()
            if attempts == 1 and notify is not None and now < deadline:
                notify(f"upstream {base} not ready ({last}); waiting up to {wait_s:g} s (--upstream-wait)")
            if now >= deadline:
                waited = now - started
                raise UpstreamNotReady(
                    f"upstream {base} not ready after {waited:.1f} s: {attempts} attempt(s) of GET {models_url} "
                    f"every {interval_s:g} s, the last got {last}; start the upstream or fix --upstream, "
                    "or wait longer with --upstream-wait SECONDS (0: do not wait)"
                )
            sleep(min(interval_s, deadline - now))  # the last attempt falls on the deadline
