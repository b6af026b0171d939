"""The ``spawn`` mode: the gateway starts one fresh, jailed Node + Pyodide process per cell.

Decisions:

- **One process per cell, never reused.** After untrusted code has run in a process, nothing
  about it is trusted again (a module it patched, a file descriptor it opened, memory it
  filled), so each process runs exactly one cell and is then killed with its whole process
  group, and its scratch folder removed. Loading Pyodide costs about 1.5 s wall and 2 s CPU on
  this project's 2-core machine, so the sandbox keeps ``warm_processes`` (default 1) runners
  loaded *before* any code reaches them: a runner that has run nothing holds nothing of
  anyone's, and the next cell takes it (measured: 1.5 s for a cell without a warm runner,
  16 ms with one) while its replacement loads. A warm runner was started for the sandbox's
  default timeout; a cell asking for more gets a fresh process (RLIMIT_CPU is set at exec).
  Concurrent cells each get their own process and scratch folder; at most ``max_concurrency``
  run at once (default: one per CPU), the rest wait their turn without that wait counting
  against their timeout.
- **Layers, outermost first** (jail.py and runner.mjs say how each works):
  kernel: Landlock (file system, TCP, signals, ptrace), seccomp (no socket() at all, no
  io_uring, no ptrace), rlimits (RLIMIT_DATA memory cap, RLIMIT_CPU, RLIMIT_FSIZE), a new
  session whose whole group is SIGKILLed at the deadline, an empty environment;
  Node: ``--experimental-permission`` with read access to Pyodide, the runner and the scratch
  folder and write access to the scratch folder only (no child processes, workers, addons or
  WASI), ``--disallow-code-generation-from-strings`` (no eval/Function, so Python cannot build
  JS from a string), ``--wasm-max-mem-pages`` (Python's heap), ``--max-old-space-size``;
  Pyodide: a ``js`` module that holds only timers and plain constructors, network globals
  deleted before Pyodide loads, the scratch folder mounted at /mnt/data as the only host
  folder, nothing fetched (``packages: []``, the stdlib zip of the npm package).
  Each refusal is shown by tests/gateway/test_sandbox.py, and the kernel layers are shown
  against arbitrary JS too (a probe script run with the same jail and flags), since Node's
  permission model is, by Node's own documentation, no guarantee against malicious code.
- **Time** is the parent's: the cell's timer starts when its code is sent to a loaded runner,
  so a slow load on a busy machine does not eat the code's budget; loading has its own
  deadline (STARTUP_TIMEOUT_S), past which the sandbox, not the code, has failed.
- **Output** is counted here, in the parent, on what actually arrives: a cell (or JS it
  escaped into) cannot print past the cap, which cuts the logs and stops the cell.
- Linux only: Landlock and seccomp are Linux interfaces. Without Landlock (kernel < 5.13, or
  the LSM not enabled) opening the sandbox fails rather than running with a weaker boundary.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from .contract import CodeSandbox, SandboxError, SandboxLimits, SandboxResult

SANDBOX_DIR = Path(__file__).resolve().parent
RUNNER_SCRIPT = SANDBOX_DIR / "runner.mjs"
JAIL_SCRIPT = SANDBOX_DIR / "jail.py"
NODE_MODULES_DIR = SANDBOX_DIR / "node_modules"
DEFAULT_PYODIDE_DIR = NODE_MODULES_DIR / "pyodide"
# The exact Pyodide release, read from the one place it is pinned (package.json).
PYODIDE_VERSION: str = json.loads((SANDBOX_DIR / "package.json").read_text())[
    "dependencies"]["pyodide"]
INSTALL_HINT = "run `bash scripts/install-pyodide.sh`"

# Node 20 is the first with --experimental-permission (and process.binding refused under it).
MIN_NODE_MAJOR = 20
# Loading Pyodide measured 1.5-2 s on the project's 2-core machine; 15x that for a CI machine
# busy with other tests before the load counts as the sandbox failing (SandboxError).
STARTUP_TIMEOUT_S = 30.0
# RLIMIT_CPU is a backstop behind the wall-clock kill: the cell's timeout plus loading's CPU
# (1.9 s measured, Node uses a second thread while compiling Wasm) with the same margin.
STARTUP_CPU_S = 30
# RLIMIT_DATA above the Python heap: Node, V8's heap (capped below), Pyodide's compiled Wasm
# code and the stdlib zip. An idle loaded runner measured 166 MB resident.
NODE_HEADROOM_MB = 512
# V8's old-generation heap: the runner holds only frames and the job; Python objects live in
# Wasm memory, not here (Node's own default is about 2 GB on 64-bit).
JS_HEAP_MB = 256
WASM_PAGE_BYTES = 64 * 1024
# Files the process may hold open: Node needs a few dozen; the cell's own files come on top.
MAX_OPEN_FILES = 256
# One NDJSON frame line: the runner cuts its text at 16 Ki chars, 6x JSON-escaped still fits.
FRAME_LINE_LIMIT_BYTES = 1024 * 1024
# What is kept of Node's stderr to name a crash (a V8 fatal error is a few lines).
STDERR_KEEP_BYTES = 8 * 1024
# How much of that names the crash in the result's error (a minified line can be 100 KB).
STDERR_REASON_CHARS = 200
# The stdin job: the cell's code, bounded like a request body (the external server's cap).
MAX_CODE_BYTES = 1024 * 1024
# Node's OpenSSL reads /etc/ssl/openssl.cnf at start and exits when Landlock refuses it; an
# empty config keeps /etc closed (the runner does no TLS: it has no network at all).
EMPTY_OPENSSL_CONFIG = "/dev/null"
# Loaded runners kept waiting for the next cell (each ~170 MB, no CPU while idle): one hides
# Pyodide's load from a gateway that runs cells one after another; 0 loads per call.
DEFAULT_WARM_PROCESSES = 1
# The scratch folder's total is checked this often while a cell runs (the kernel caps each
# file at once, RLIMIT_FSIZE; the total can overshoot by what is written in one interval).
SCRATCH_CHECK_INTERVAL_S = 0.25
# Files and folders a cell may leave under /mnt/data: bounds the check's walk, and the inodes
# a cell can take from the host's disk.
MAX_SCRATCH_ENTRIES = 10_000
# Where the cell's files appear inside Python (OpenAI's path, see runner.mjs).
SCRATCH_MOUNT = "/mnt/data"


def _signal_name(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _elf_interpreter(path: str) -> str | None:
    """PT_INTERP of an ELF file: the loader the kernel opens for exec (needs Landlock EXECUTE)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return None
        order = "<" if head[5] == 1 else ">"
        if head[4] == 2:
            (phoff,) = struct.unpack(order + "Q", head[32:40])
            phentsize, phnum = struct.unpack(order + "HH", head[54:58])
        else:
            (phoff,) = struct.unpack(order + "I", head[28:32])
            phentsize, phnum = struct.unpack(order + "HH", head[42:46])
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            if struct.unpack(order + "I", ph[:4])[0] != 3:  # PT_INTERP
                continue
            if head[4] == 2:
                offset, size = struct.unpack(order + "Q", ph[8:16])[0], struct.unpack(
                    order + "Q", ph[32:40])[0]
            else:
                offset, size = struct.unpack(order + "I", ph[4:8])[0], struct.unpack(
                    order + "I", ph[16:20])[0]
            f.seek(offset)
            return f.read(size).rstrip(b"\0").decode()
    return None


def _shared_libraries(node: str) -> list[str]:
    """The files Node's loader reads: its libraries (from ldd) and the loader cache."""
    paths = ["/etc/ld.so.cache"]
    try:
        out = subprocess.run(["ldd", node], capture_output=True, text=True, timeout=10,
                             env={"PATH": os.defpath}, check=False).stdout
        paths += re.findall(r"(/\S+)\s+\(0x", out)
    except (OSError, subprocess.SubprocessError):
        out = ""
    if not re.search(r"=> /", out):  # no ldd (or a static binary): the usual library folders
        paths += ["/lib", "/lib64", "/usr/lib", "/usr/lib64"]
    seen: list[str] = []
    for p in paths:
        for candidate in (p, os.path.realpath(p)):
            if os.path.exists(candidate) and candidate not in seen:
                seen.append(candidate)
    return seen


def _probe_landlock() -> int:
    # Deferred: jail.py is the script each cell runs under; the gateway process loads it only
    # to probe Landlock, when a spawn sandbox is opened.
    from . import jail

    return jail.landlock_abi(ctypes.CDLL(None, use_errno=True))


def _remove_tree(path: str) -> None:
    def _retry_writable(func, p, _exc):  # a cell may chmod its own files to 000
        try:
            os.chmod(p, stat.S_IRWXU)
            parent = os.path.dirname(p)
            os.chmod(parent, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=_retry_writable)


def _scratch_over(root: str, *, max_bytes: int) -> bool:
    """Whether the folder's files add up past ``max_bytes`` or MAX_SCRATCH_ENTRIES entries."""
    total = entries = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > MAX_SCRATCH_ENTRIES:
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                        if total > max_bytes:
                            return True
        except OSError:
            continue
    return False


class _Logs:
    """The cell's logs as they arrive, cut at the byte cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.overflowed = False

    def add(self, text: str) -> None:
        if self.overflowed or not text:
            return
        data = text.encode("utf-8", "surrogatepass")
        room = self.cap - self.size
        if len(data) > room:
            self.parts.append(data[:room].decode("utf-8", "ignore"))
            self.size = self.cap
            self.overflowed = True
            return
        self.parts.append(text)
        self.size += len(data)

    def text(self) -> str:
        return "".join(self.parts)


class SpawnSandbox(CodeSandbox):
    """Each ``run`` starts ``jail.py`` -> ``node runner.mjs`` in a new scratch folder."""

    def __init__(self, *, limits: SandboxLimits | None = None, scratch_root: str | None = None,
                 node: str | None = None, pyodide_dir: str | os.PathLike[str] | None = None,
                 max_concurrency: int | None = None, warm_processes: int | None = None) -> None:
        if not sys.platform.startswith("linux"):
            raise SandboxError(
                "the spawn code sandbox needs Linux (Landlock and seccomp); use mode 'external'")
        self.limits = limits or SandboxLimits()
        self.pyodide_dir = Path(pyodide_dir) if pyodide_dir else DEFAULT_PYODIDE_DIR
        self.node = node or shutil.which("node") or ""
        if not self.node:
            raise SandboxError(
                f"Node.js (>= {MIN_NODE_MAJOR}) is not on PATH: the code sandbox runs Pyodide "
                f"under Node; install it, then {INSTALL_HINT}")
        self.node = os.path.realpath(self.node)
        self._check_node()
        self._check_pyodide()
        self.landlock_abi = _probe_landlock()
        if self.landlock_abi < 1:
            raise SandboxError(
                "the code sandbox needs Linux Landlock (kernel >= 5.13 with 'landlock' among "
                "the enabled LSMs) and this kernel has none; use mode 'external'")
        self.scratch_root = scratch_root or tempfile.gettempdir()
        os.makedirs(self.scratch_root, exist_ok=True)
        interpreter = _elf_interpreter(self.node)
        self._exec_paths = [self.node] + ([os.path.realpath(interpreter)] if interpreter else [])
        self._library_paths = _shared_libraries(self.node)
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self.warm_processes = DEFAULT_WARM_PROCESSES if warm_processes is None else warm_processes
        self._warm: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Task]] = (
            weakref.WeakKeyDictionary())
        # one semaphore per event loop: an asyncio.Semaphore belongs to the loop it first
        # waited on, and a gateway's tests may drive one sandbox from several loops
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())
        self._live: dict[asyncio.subprocess.Process, str] = {}  # process -> its scratch folder
        self._closed = False
        # tests only: run a probe script instead of runner.mjs, or leave a kernel layer off to
        # show that the probe would get through without it
        self._script = RUNNER_SCRIPT
        self._landlock = True
        self._seccomp = True

    def _check_node(self) -> None:
        try:
            version = subprocess.run([self.node, "--version"], capture_output=True, text=True,
                                     timeout=30, env={}, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"cannot run {self.node} --version: {exc}") from None
        match = re.match(r"v(\d+)\.", version)
        if not match or int(match.group(1)) < MIN_NODE_MAJOR:
            raise SandboxError(
                f"the code sandbox needs Node.js >= {MIN_NODE_MAJOR} (for its permission model), "
                f"found {version or 'nothing'} at {self.node}")

    def _check_pyodide(self) -> None:
        package = self.pyodide_dir / "package.json"
        try:
            version = json.loads(package.read_text())["version"]
        except (OSError, ValueError, KeyError):
            version = None
        complete = all((self.pyodide_dir / name).is_file()
                       for name in ("pyodide.mjs", "pyodide.asm.wasm", "python_stdlib.zip"))
        if version != PYODIDE_VERSION or not complete:
            found = f"found {version}" if version else "not installed"
            raise SandboxError(
                f"Pyodide {PYODIDE_VERSION} is missing from {self.pyodide_dir} ({found}): "
                f"{INSTALL_HINT}")

    def cpu_limit_s(self, timeout_s: float) -> int:
        """RLIMIT_CPU for a cell of ``timeout_s``: a backstop the wall-clock kill comes before."""
        return int(timeout_s) + 1 + STARTUP_CPU_S

    def command(self, scratch: str, *, timeout_s: float) -> list[str]:
        """The argv of one cell's process: the jail, then Node with its flags and the script."""
        limits = self.limits
        node_modules = str(self.pyodide_dir.parent)
        script = str(self._script)
        jail = [sys.executable, "-I", "-S", str(JAIL_SCRIPT),
                "--cpu-s", str(self.cpu_limit_s(timeout_s)),
                "--data-bytes", str((limits.memory_mb + NODE_HEADROOM_MB) * 1024 * 1024),
                "--fsize-bytes", str(limits.max_file_bytes),
                "--nofile", str(MAX_OPEN_FILES),
                "--rw", scratch, "--read", node_modules, "--read", script,
                "--read", EMPTY_OPENSSL_CONFIG]
        for path in self._library_paths:
            jail += ["--read", path]
        for path in self._exec_paths:
            jail += ["--exec", path]
        if not self._landlock:
            jail.append("--no-landlock")
        if not self._seccomp:
            jail.append("--no-seccomp")
        node = [self.node, "--no-warnings", f"--openssl-config={EMPTY_OPENSSL_CONFIG}",
                "--experimental-permission",
                f"--allow-fs-read={node_modules}", f"--allow-fs-read={script}",
                f"--allow-fs-read={scratch}", f"--allow-fs-write={scratch}",
                "--disallow-code-generation-from-strings",
                f"--max-old-space-size={JS_HEAP_MB}",
                f"--wasm-max-mem-pages={limits.memory_mb * 1024 * 1024 // WASM_PAGE_BYTES}",
                script]
        return jail + ["--"] + node

    async def run(self, code: str, *, timeout_s: float | None = None) -> SandboxResult:
        if self._closed:
            raise SandboxError("the code sandbox is closed")
        timeout = self.limits.timeout_s if timeout_s is None else float(timeout_s)
        if not timeout > 0:
            raise SandboxError(f"timeout_s must be > 0, got {timeout_s}")
        if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            return SandboxResult(logs="", error=f"CodeTooLarge: the cell is over {MAX_CODE_BYTES}"
                                 " bytes", timed_out=False, duration_s=0.0)
        loop = asyncio.get_running_loop()
        slots = self._slots.setdefault(loop, asyncio.Semaphore(self.max_concurrency))
        async with slots:
            started = time.monotonic()
            cell = await self._take_loaded(loop, timeout)
            try:
                logs, error, timed_out = await self._run_cell(cell, code, timeout)
            finally:
                await cell.discard()
            return SandboxResult(logs=logs, error=error, timed_out=timed_out,
                                 duration_s=time.monotonic() - started)

    async def _take_loaded(self, loop: asyncio.AbstractEventLoop, timeout: float) -> _Cell:
        """A loaded process that has run nothing: a warm one when there is one, else a new one.

        Taking a warm one starts its replacement, so the pool stays full while cells come.
        """
        warm = self._warm.setdefault(loop, [])
        for _ in range(len(warm)):  # the ones there now: a failing refill must not loop here
            task = warm.pop(0)
            try:
                cell = await task
            except SandboxError:
                continue  # it failed to load: try the next, then a new one
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task.cancelled() and not (current and current.cancelling()):
                    continue  # close() cancelled that one, not us
                raise
            if cell.proc.returncode is not None:
                await cell.discard()  # died while idle
                continue
            if cell.cpu_timeout_s < timeout:
                warm.append(task)  # its CPU limit is too short for this cell: keep it for the next
                break
            self._refill(loop)  # its replacement loads while this cell runs
            return cell
        cell = await self._start(timeout)
        self._refill(loop)  # after this cell's own load, so that the two do not compete
        return cell

    def _refill(self, loop: asyncio.AbstractEventLoop) -> None:
        warm = self._warm.setdefault(loop, [])
        while not self._closed and len(warm) < self.warm_processes:
            warm.append(loop.create_task(self._start(self.limits.timeout_s)))

    async def _start(self, timeout: float) -> _Cell:
        """Start one jailed runner in a new scratch folder and wait until Pyodide is loaded."""
        scratch = tempfile.mkdtemp(prefix="cell-", dir=self.scratch_root)
        setup = json.dumps({"scratch": scratch, "pyodide": str(self.pyodide_dir),
                            "memory_mb": self.limits.memory_mb}).encode() + b"\n"
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(scratch, timeout_s=timeout), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={},
                start_new_session=True, limit=FRAME_LINE_LIMIT_BYTES)
        except OSError as exc:
            _remove_tree(scratch)
            raise SandboxError(f"cannot start the code sandbox: {exc}") from None
        cell = _Cell(self, proc, scratch, timeout)
        try:
            try:
                proc.stdin.write(setup)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it died at once; its stderr says why
            try:
                ready = await asyncio.wait_for(self._until_ready(proc), STARTUP_TIMEOUT_S)
            except TimeoutError:
                raise SandboxError(
                    f"the code sandbox did not load Pyodide within {STARTUP_TIMEOUT_S:g} s"
                ) from None
            if not ready:
                self._kill(proc)
                await proc.wait()
                reason = (await cell.stderr).strip().splitlines()
                raise SandboxError(
                    "the code sandbox could not start ("
                    f"{_signal_name(proc.returncode)}): "
                    f"{reason[-1][:STDERR_REASON_CHARS] if reason else 'no output'}")
        except BaseException:
            await cell.discard()
            raise
        return cell

    async def _run_cell(self, cell: _Cell, code: str, timeout: float
                        ) -> tuple[str, str | None, bool]:
        proc = cell.proc
        logs = _Logs(self.limits.max_output_bytes)
        try:
            proc.stdin.write(json.dumps({"code": code}, ensure_ascii=True).encode() + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died; reading its stdout finds the end, and its stderr says why
        reading = asyncio.ensure_future(self._until_done(proc, logs))
        watching = asyncio.ensure_future(self._watch_scratch(cell.scratch))
        try:
            finished, _ = await asyncio.wait({reading, watching}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reading, watching):
                task.cancel()
        if reading in finished:
            outcome = reading.result()
        elif watching in finished:
            return (logs.text(), (f"ScratchFull: the files under {SCRATCH_MOUNT} passed "
                                  f"{self.limits.max_scratch_bytes} bytes or "
                                  f"{MAX_SCRATCH_ENTRIES} entries; the cell was stopped"), False)
        else:
            return (logs.text(), (f"TimeoutError: the cell ran past its {timeout:g} s "
                                  "limit and was stopped"), True)
        if outcome == "overflow":
            return (logs.text(), (f"OutputLimitExceeded: the cell's output passed "
                                  f"{self.limits.max_output_bytes} bytes; it was cut there "
                                  "and the cell was stopped"), False)
        if isinstance(outcome, dict):
            if outcome.get("display") is not None:
                logs.add(str(outcome["display"]))
            error = outcome.get("error")
            return logs.text(), (str(error) if error is not None else None), False
        # The process ended without a result: name the limit that ended it.
        self._kill(proc)
        await proc.wait()
        return (logs.text(), *self._crash_reason(proc.returncode, await cell.stderr))

    async def _watch_scratch(self, scratch: str) -> None:
        """Return once the scratch folder holds too much (RLIMIT_FSIZE bounds one file only)."""
        while True:
            await asyncio.sleep(SCRATCH_CHECK_INTERVAL_S)
            if _scratch_over(scratch, max_bytes=self.limits.max_scratch_bytes):
                return

    async def _until_ready(self, proc: asyncio.subprocess.Process) -> bool:
        while True:
            line = await proc.stdout.readline()
            if not line:
                return False
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if isinstance(frame, dict) and frame.get("ready") is True:
                return True

    async def _until_done(self, proc: asyncio.subprocess.Process, logs: _Logs
                          ) -> dict | str | None:
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line past FRAME_LINE_LIMIT_BYTES: not from the runner
                logs.add("\n")
                logs.overflowed = True
                return "overflow"
            if not line:
                return None
            try:
                frame = json.loads(line)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and isinstance(frame.get("out"), str):
                logs.add(frame["out"])
            elif isinstance(frame, dict) and isinstance(frame.get("done"), dict):
                return frame["done"]
            else:  # something else wrote to the runner's stdout: it is output all the same
                logs.add(line.decode("utf-8", "replace"))
            if logs.overflowed:
                return "overflow"

    @staticmethod
    async def _stderr_tail(proc: asyncio.subprocess.Process) -> str:
        kept = b""
        while chunk := await proc.stderr.read(65536):
            kept = (kept + chunk)[-STDERR_KEEP_BYTES:]
        return kept.decode("utf-8", "replace")

    def _crash_reason(self, returncode: int | None, stderr: str) -> tuple[str, bool]:
        if returncode == -signal.SIGXCPU:
            return "TimeoutError: the cell used up its CPU time limit and was stopped", True
        if returncode == -signal.SIGXFSZ:
            return (f"FileTooLarge: a file under {SCRATCH_MOUNT} grew past "
                    f"{self.limits.max_file_bytes} bytes and the cell was stopped"), False
        if re.search(r"heap limit|out of memory|Allocation failed", stderr, re.IGNORECASE):
            return (f"MemoryError: the sandbox ran out of memory (limit "
                    f"{self.limits.memory_mb} MB) and the cell was stopped"), False
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        named = [line for line in lines if re.match(r"(\w*Error|FATAL|Fatal|jail:)", line)]
        reason = (named or lines or [""])[0][:STDERR_REASON_CHARS]
        return (f"SandboxCrashed: the sandbox process ended without a result "
                f"({_signal_name(returncode)}){': ' + reason if reason else ''}"), False

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Kill every process (running or warm) and remove their scratch folders, now."""
        self._closed = True
        for tasks in list(self._warm.values()):
            for task in tasks:
                task.cancel()
        for proc, scratch in list(self._live.items()):
            self._kill(proc)
            _remove_tree(scratch)

    async def aclose(self) -> None:
        """``close()``, then wait until the processes of this event loop are reaped."""
        self.close()
        tasks = self._warm.pop(asyncio.get_running_loop(), [])
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is None:
                await task.result().discard()


class _Cell:
    """One runner process and its scratch folder, used for exactly one cell, then discarded."""

    def __init__(self, sandbox: SpawnSandbox, proc: asyncio.subprocess.Process, scratch: str,
                 cpu_timeout_s: float) -> None:
        self.sandbox, self.proc, self.scratch = sandbox, proc, scratch
        self.cpu_timeout_s = cpu_timeout_s  # the longest cell its RLIMIT_CPU was set for
        self.stderr = asyncio.ensure_future(sandbox._stderr_tail(proc))
        sandbox._live[proc] = scratch

    async def discard(self) -> None:
        """Kill the whole process group, reap it, and remove the scratch folder."""
        self.sandbox._kill(self.proc)
        try:
            if self.proc.returncode is None:
                await self.proc.wait()
        finally:
            if not self.stderr.done():
                self.stderr.cancel()
            self.sandbox._live.pop(self.proc, None)
            _remove_tree(self.scratch)
