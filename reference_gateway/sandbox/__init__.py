"""The hosted ``code_interpreter`` tool's sandbox: Python in Pyodide under a jailed Node.

The gateway calls exactly this::

    sandbox = open_sandbox(mode, url=..., scratch_root=..., limits=SandboxLimits(...))
    result = await sandbox.run(code, timeout_s=...)   # SandboxResult, never raises for the code
    sandbox.close()

Modes: ``spawn`` (spawn.py: a fresh jailed process per cell on this machine), ``external``
(external.py: a sandbox service over HTTP, the protocol documented there; ``python -m
reference_gateway.sandbox serve`` is one), ``disabled`` (``open_sandbox`` returns None and the
gateway refuses the tool), and ``auto`` (the gateway's default, reference_gateway/config.py:
``spawn`` when it can run here, else None, so that a machine without Node or Pyodide still
serves everything else). contract.py holds the result, the limits and their precedents.
"""

from __future__ import annotations

from .contract import CodeSandbox, SandboxError, SandboxLimits, SandboxResult

__all__ = ["MODES", "CodeSandbox", "SandboxError", "SandboxLimits", "SandboxResult",
           "open_sandbox"]

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
        from .spawn import SpawnSandbox

        try:
            return SpawnSandbox(limits=limits, scratch_root=scratch_root)
        except SandboxError:
            if mode == "auto":
                return None
            raise
    if mode == "external":
        if not url:
            raise SandboxError("code sandbox mode 'external' needs the sandbox service's url")
        from .external import ExternalSandbox

        return ExternalSandbox(url, limits=limits)
    raise SandboxError(f"unknown code sandbox mode {mode!r}: use one of {', '.join(MODES)}")
