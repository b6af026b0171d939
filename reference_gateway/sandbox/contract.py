"""What every sandbox mode promises the gateway: the result, the limits, the one error.

The gateway's ``code_interpreter`` tool hands a cell of Python to a :class:`CodeSandbox` and
turns the :class:`SandboxResult` into a ``code_interpreter_call`` item whose ``outputs`` hold
``{"type": "logs", "logs": result.logs}``. Decisions kept here, so that every mode agrees:

- ``run`` never raises for anything the *code* does: an exception, a timeout, running out of
  memory or flooding its output all come back in the result. :class:`SandboxError` means the
  sandbox itself could not run (not installed, service unreachable) and is the gateway's
  problem, not the model's.
- ``logs`` is stdout and stderr interleaved as written, then the repr of the cell's last
  expression when it is not None, the way a notebook shows it and the way OpenAI's code
  interpreter reports it: in shared/fixtures/openai-recorded/openai-code-interpreter-tool.1,
  the code ``sums[:20]`` has logs ``"[6, 7, 2, 5, ...]"``, with no trailing newline.
- ``error`` is ``"Type: message"`` of the exception that ended the cell (its traceback is in
  ``logs``), or a sentence naming the limit that stopped it; None when the cell completed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Self

# A cell's wall-clock budget. OpenAI does not document one per call; 10 s keeps a tool call
# within what a streaming client waits between events (the harness's default idle deadline is
# of the same order) while fitting real work on small data.
DEFAULT_TIMEOUT_S = 10.0
# Memory for the Python heap of one cell: OpenAI's containers default to memory_limit "1g"
# (the Containers API's 1g/4g/16g/64g choices). Pyodide is 32-bit Wasm, so 4096 is the ceiling.
DEFAULT_MEMORY_MB = 1024
MAX_MEMORY_MB = 4096
# What one cell may print before it is cut and stopped: Jupyter stops forwarding output above
# its iopub_data_rate_limit of 1,000,000 bytes/s; 1 MiB is about that, and already far more
# than a model can read back in one tool output.
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
# The largest single file a cell may write under /mnt/data (RLIMIT_FSIZE). OpenAI accepts
# uploads up to 512 MB; a scratch file for one cell is capped well below the machine's disk.
DEFAULT_MAX_FILE_BYTES = 128 * 1024 * 1024
# All of a cell's files together (spawn.py checks the folder four times a second): OpenAI's
# per-file upload limit of 512 MB, here for the whole scratch folder of one cell.
DEFAULT_MAX_SCRATCH_BYTES = 512 * 1024 * 1024


class SandboxError(RuntimeError):
    """The sandbox itself cannot run; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-cell limits; every mode enforces them (the external server with its own copy)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_scratch_bytes: int = DEFAULT_MAX_SCRATCH_BYTES

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise SandboxError(f"sandbox timeout_s must be > 0, got {self.timeout_s}")
        if not 64 <= self.memory_mb <= MAX_MEMORY_MB:
            raise SandboxError(
                f"sandbox memory_mb must be within 64..{MAX_MEMORY_MB} (32-bit Wasm), "
                f"got {self.memory_mb}")
        if min(self.max_output_bytes, self.max_file_bytes, self.max_scratch_bytes) < 1:
            raise SandboxError(
                "sandbox max_output_bytes, max_file_bytes and max_scratch_bytes must be >= 1")


@dataclass(frozen=True)
class SandboxResult:
    """One cell's outcome. ``duration_s`` is the whole call as the gateway waited for it."""

    logs: str
    error: str | None
    timed_out: bool
    duration_s: float


class CodeSandbox(abc.ABC):
    """Runs one cell of Python per call, isolated; one instance is shared by the gateway."""

    @abc.abstractmethod
    async def run(self, code: str, *, timeout_s: float | None = None) -> SandboxResult:
        """Run ``code``; ``timeout_s`` (default: the limits') bounds the code's own run."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop whatever is in flight; later ``run`` calls raise :class:`SandboxError`."""

    async def aclose(self) -> None:
        """``close()`` for an async caller (a server's shutdown): also waits for the cleanup."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
