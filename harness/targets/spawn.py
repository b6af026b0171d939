"""A server the harness starts itself (vLLM, or any command): start it in its own process
group with its output in a log file, wait until an HTTP URL answers 200, stop the whole group.

    with SpawnedServer(argv, ready_url=..., log_path=..., name="vllm") as server:
        ...                      # ready here, or SpawnError was raised (one line, names the log)
    # SIGTERM to the group, SIGKILL after `grace_s` if anything is left

Every wait is bounded (DESIGN.md principle 8): a server that never answers or dies while
starting gives a one-line :class:`SpawnError` naming the log file, never a hung run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

# vLLM on 2 CPU cores is ready after 60-90 s (shared/notes/vllm-on-cpu.md); 300 s leaves room
# for a loaded CI machine and a cold page cache.
DEFAULT_START_TIMEOUT_S = 300.0
# Between SIGTERM and SIGKILL. vLLM shuts its engine-core process down on SIGTERM in a few
# seconds; systemd's default stop timeout is 90 s, docker stop's is 10 s -- we take docker's.
DEFAULT_GRACE_S = 10.0
# One readiness probe: short, since the loop retries until the start deadline.
PROBE_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 0.5
# How much of the log's last line an error quotes.
LOG_QUOTE_CHARS = 200


class SpawnError(Exception):
    """The server could not be started; the message is one line and names the log file."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now. The spawned server binds it a moment later; another
    process could take it in between, which the readiness wait then reports as an early exit."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def last_log_line(path: Path) -> str:
    """The last non-blank line of a log (read from its tail only), shortened; '' if none."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= LOG_QUOTE_CHARS else line[: LOG_QUOTE_CHARS - 3] + "..."


class SpawnedServer:
    """``argv`` run in a new session (its own process group), stdout+stderr appended to
    ``log_path``; ready when GET ``ready_url`` answers 200."""

    def __init__(self, argv: Sequence[str], *, ready_url: str, log_path: Path,
                 name: str = "server", env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
                 grace_s: float = DEFAULT_GRACE_S) -> None:
        self.argv = list(argv)
        self.ready_url = ready_url
        self.log_path = Path(log_path)
        self.name = name
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.start_timeout_s = start_timeout_s
        self.grace_s = grace_s
        self.process: subprocess.Popen | None = None
        self.ready_after_s: float | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> SpawnedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"# respcheck: starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=self.env, cwd=self.cwd, start_new_session=True)
            except OSError as exc:
                raise SpawnError(f"{self.name} could not be started ({exc}); "
                                 f"see {self.log_path}") from None
        try:
            self._wait_ready(started)
        except BaseException:  # SpawnError, KeyboardInterrupt: never leave it running
            self.close()
            raise
        self.ready_after_s = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.start_timeout_s
        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise SpawnError(self._with_log(
                        f"{self.name} exited with code {code} before it was ready"))
                try:
                    if client.get(self.ready_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise SpawnError(self._with_log(
                        f"{self.name} was not ready within {self.start_timeout_s:g} s "
                        f"(GET {self.ready_url})"))
                time.sleep(PROBE_INTERVAL_S)

    def _with_log(self, message: str) -> str:
        last = last_log_line(self.log_path)
        quoted = f"; last log line: {last!r}" if last else ""
        return f"{message}; see {self.log_path}{quoted}"

    def close(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after ``grace_s``. Idempotent."""
        proc = self.process
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        if not _signal_group(pgid, signal.SIGTERM):
            proc.wait()
            return
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            _signal_group(pgid, signal.SIGKILL)
        try:
            proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:  # unkillable (D state): nothing more we can do
            pass

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> SpawnedServer:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)
