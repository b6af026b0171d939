"""The servers a run starts, each started once and shared by every target that needs it.

``respcheck run --target vllm --target reference+vllm --target reference+native:vllm`` judges
three targets over one vLLM: the first target that needs it starts it, the others find it
here, and it is stopped when the pool closes, at the end of the run (before, each target
started its own: three vLLM starts of a minute or more each). The same holds for every
spawned server (llama.cpp, transformers serve, ...) and for the embedded mock upstream that
LiteLLM and open-responses-server front.

A server that failed to start is remembered as failed: the next target that needs it gets the
same one-line error at once, instead of a second start that would fail the same way.

    with ServerPool(log_dir=report_dir) as pool:
        upstream = pool.get("vllm", lambda: spawn_vllm(...))   # a context manager, entered once
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Self


@dataclass(frozen=True, slots=True)
class Upstream:
    """A running server: its name, where it is, what it serves."""
    name: str
    base_url: str
    model: str | None
    api_key: str | None = None


class ServerPool:
    """Running servers by key, closed in reverse order of start when the pool closes."""

    def __init__(self, *, log_dir: Path | None = None) -> None:
        # Where spawned servers write their logs (the run's report folder); None: the cache's.
        self.log_dir = log_dir
        self._stack = contextlib.ExitStack()
        self._running: dict[str, object] = {}
        self._failed: dict[str, BaseException] = {}

    def get(self, key: str, start: Callable[[], AbstractContextManager]):
        """The value of the server started under ``key``, starting it (``start()``, entered)
        the first time. A start that raised raises the same error again for this key."""
        if key in self._failed:
            raise self._failed[key]
        if key not in self._running:
            try:
                self._running[key] = self._stack.enter_context(start())
            except Exception as exc:
                self._failed[key] = exc
                raise
        return self._running[key]

    def started(self) -> list[str]:
        return list(self._running)

    def close(self) -> None:
        self._running.clear()
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
