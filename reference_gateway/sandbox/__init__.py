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
serves everything else). contract.py holds the result, the limits and their precedents;
modes.py holds ``open_sandbox``. This ``__init__`` imports nothing: spawn.py and external.py
import contract.py, and modes.py imports them, so no import goes back up to the package.
"""
