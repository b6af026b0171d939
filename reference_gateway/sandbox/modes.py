"""``open_sandbox(mode, ...)``: the sandbox of each mode the gateway can be configured with.

Kept apart from contract.py (what every mode promises) because it imports every mode's
implementation, and those import contract.py.
"""

from __future__ import annotations

from .contract import CodeSandbox, SandboxError, SandboxLimits
from .external import ExternalSandbox
from .spawn import SpawnSandbox

MODES = ("auto", "spawn", "external", "disabled")


def open_sandbox(mode: str, *, url: str | None = None, scratch_root: str | None = None,
                 limits: SandboxLimits | None = None) -> CodeSandbox | None:
    """The sandbox for ``mode``, or None for ``disabled``.

    Raises :class:`SandboxError` (one line) for an unknown mode, a ``spawn`` sandbox that is
    not installed (Node, Pyodide, Landlock) or an ``external`` one without ``url``. ``url`` is
    only for ``external``; ``scratch_root`` (where each cell's /mnt/data folder is made, default
    the system temp folder) only for ``spawn``: the service has its own.
    """
    if mode == "disabled":
        return None
    if mode in ("spawn", "auto"):
        try:
            return SpawnSandbox(limits=limits, scratch_root=scratch_root)
        except SandboxError:
            if mode == "auto":
                return None
            raise
    if mode == "external":
        if not url:
            raise SandboxError("code sandbox mode 'external' needs the sandbox service's url")
        return ExternalSandbox(url, limits=limits)
    raise SandboxError(f"unknown code sandbox mode {mode!r}: use one of {', '.join(MODES)}")
