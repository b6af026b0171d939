"""``--workers N``: N uvicorn worker processes serving one port, sharing one store.

    python -m reference_gateway --workers 4 --store ./gateway.sqlite3   # or a postgresql:// URL

The parent (this module's ``serve_workers``) does once what must happen once: it parses the
flags, starts the embedded mock upstream when there is no ``--upstream`` (one mock, in the
parent, for every worker), waits for the upstream, checks that the store opens, and binds the
listening socket. Then it is a supervisor (uvicorn's ``Multiprocess``): it starts N workers,
restarts one that dies, and on SIGTERM / SIGINT stops them all (each finishes its streams for
up to ``GRACEFUL_SHUTDOWN_S``, then settles its background responses) before it exits; a
worker still there after ``STOP_DEADLINE_S`` is killed. ``--workers 1`` (the default) is the
plain in-process server of ``__main__``, with no supervisor.

Decisions:

- **Config hand-off.** uvicorn starts workers with the ``spawn`` method, so each worker imports
  ``create_worker_app`` (an import string) and must rebuild the parent's ``GatewayConfig``. The
  parent pickles the finished config (API keys, the nested ``BuiltinConfig`` with MCP headers,
  a Postgres URL that may hold a password: everything already read and validated) into a file
  of mode 0600 in a private directory (``mkdtemp``: 0700), puts only that *path* in the
  workers' environment (``CONFIG_ENV``), and removes the directory when it exits. No key is
  ever on a command line or in an environment variable. Pickle, not JSON: the config is a tree
  of frozen dataclasses that other features keep extending, and the file can only be written
  by the user who runs the gateway (the worker refuses it otherwise), who could run any code
  anyway; it is never read from anywhere else.
- **Why a supervisor and not ``uvicorn.run(workers=N)``**: uvicorn binds that socket with
  protocol 0, and asyncio then leaves Nagle on for accepted connections (~40 ms stalls on small
  SSE writes; reports/benchmarks/gateway-overhead.md); here the socket is bound with
  ``IPPROTO_TCP`` as launch.py does, and the stop is bounded.
- **Leases.** Each worker opens its own store, which is its own *instance* with its own lease in
  the store (background.py), so workers never mark each other's live background responses as
  orphaned; a worker killed outright has its pending background responses stored ``failed``
  by the others (or its replacement) within ``--orphan-after``. A ``cancel`` that reaches
  another worker than the one generating is stored at once; the generating worker's own final
  update is then refused (the conditional update), so there is still exactly one outcome, but
  its upstream call runs to its end.
- **A worker dies with its supervisor**: each worker asks Linux for SIGTERM when its parent
  dies (``PR_SET_PDEATHSIG``), so even a ``kill -9`` of the supervisor leaves no worker; after
  its shutdown such a worker removes the hand-off directory its supervisor could not.
- **Prometheus**: with N > 1 the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` for the workers
  to a fresh private directory (removed at exit) unless it is already set.
- **Debug only**: with ``REFERENCE_GATEWAY_WORKER_PID_HEADER=1`` in the environment every
  answer of a worker carries ``x-gateway-worker-pid: PID``, so a test (or a person with curl)
  can see which worker served a connection. Off by default: it tells clients process ids.
- ``--workers N`` with ``--store :memory:`` is refused: each process would have a store of its
  own, and a response made by one worker would be unknown to the others.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pickle
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reference_gateway import logs
from reference_gateway.app import create_app
from reference_gateway.config import GatewayConfig
from reference_gateway.process import tune_gc
from reference_gateway.sandbox.contract import SandboxError
from reference_gateway.store import open_store
from reference_gateway.store_contract import StoreError

# The environment variable that tells a worker where the parent left its config.
CONFIG_ENV = "REFERENCE_GATEWAY_WORKER_CONFIG"
PID_HEADER_ENV = "REFERENCE_GATEWAY_WORKER_PID_HEADER"
PID_HEADER = b"x-gateway-worker-pid"
PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONFIG_FILE = "gateway-config.pickle"
# A worker's in-flight requests get this long after SIGTERM (uvicorn's graceful shutdown),
# then its lifespan shutdown settles its background responses.
GRACEFUL_SHUTDOWN_S = 10.0
# From SIGTERM to the supervisor until every worker is gone; past it, SIGKILL. The graceful
# shutdown plus room for the lifespan shutdown (docker stop's grace is 10 s, systemd's 90 s).
STOP_DEADLINE_S = GRACEFUL_SHUTDOWN_S + 10.0
# uvicorn pings each worker over a pipe; a worker that does not answer within this is killed
# and replaced. uvicorn's default (5 s) is too short for a worker still importing on a busy
# 2-core machine.
WORKER_HEALTHCHECK_S = 30.0
MEMORY_STORE = ":memory:"

PR_SET_PDEATHSIG = 1  # linux/prctl.h

log = logging.getLogger("reference_gateway")


class WorkersError(RuntimeError):
    """The workers cannot be started; the message is one line (exit 2)."""


def refusal(workers: int, store_location: str | None) -> str | None:
    """Why ``workers`` processes cannot share ``store_location``, or None when they can."""
    if workers > 1 and (store_location or MEMORY_STORE) == MEMORY_STORE:
        return (f"--workers {workers} needs a store the processes share (a SQLite file or a postgresql:// URL); "
                f"'{MEMORY_STORE}' is private to each process")
    return None


# -- the hand-off --------------------------------------------------------------------------
def write_handoff(config: GatewayConfig, directory: Path, *, parent_pid: int) -> Path:
    """Pickle ``config`` into ``directory``/CONFIG_FILE, mode 0600, created exclusively."""
    path = Path(directory) / CONFIG_FILE
    payload = pickle.dumps({"config": config, "parent_pid": parent_pid}, protocol=pickle.HIGHEST_PROTOCOL)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    return path


def read_handoff(path: str | Path) -> dict:
    """The parent's payload, from a regular file of this user that nobody else can write."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise WorkersError(f"{path}: the worker config must be a file of this user with mode 0600")
        return pickle.loads(f.read())


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when its parent (the supervisor) dies, however it dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before the prctl
        raise SystemExit("reference gateway worker: the supervisor is gone")


class WorkerApp:
    """The gateway app as a worker serves it. After the app's lifespan shutdown, a worker whose
    supervisor is gone (it was reparented: the supervisor was killed outright and could not
    clean up) removes the hand-off directory. Debug only (``pid_header``):
    ``x-gateway-worker-pid`` on every HTTP answer."""

    def __init__(self, app, *, handoff: Path, parent_pid: int, pid_header: bool = False) -> None:
        self.app = app
        self.handoff = handoff
        self.parent_pid = parent_pid
        self.pid_header = pid_header
        self.value = str(os.getpid()).encode()

    def _after_shutdown(self) -> None:
        if os.getppid() != self.parent_pid:
            shutil.rmtree(self.handoff.parent, ignore_errors=True)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            async def send_after_shutdown(message) -> None:
                await send(message)
                if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                    self._after_shutdown()

            await self.app(scope, receive, send_after_shutdown)
            return
        if scope["type"] != "http" or not self.pid_header:
            await self.app(scope, receive, send)
            return

        async def send_with_pid(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (PID_HEADER, self.value)]}
            await send(message)

        await self.app(scope, receive, send_with_pid)


def create_worker_app():
    """The app factory each worker calls (``reference_gateway.worker:create_worker_app``).

    A worker that cannot start exits with uvicorn's STARTUP_FAILURE code, which makes the
    supervisor stop (any other exit code would make it start the worker again, in a loop)."""
    from uvicorn.config import STARTUP_FAILURE  # deferred: uvicorn is imported only where a server starts

    try:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise WorkersError(f"{CONFIG_ENV} is not set: workers are started by "
                               "python -m reference_gateway --workers N")
        payload = read_handoff(path)
        _die_with_parent(payload["parent_pid"])
        log_format = getattr(payload["config"], "log_format", None)
        if log_format:  # a spawned process starts with no logging set up: as the parent's
            logs.configure(log_format)
        app = create_app(payload["config"])
        tune_gc()
    except (WorkersError, StoreError, SandboxError, OSError) as exc:
        print(f"reference gateway worker {os.getpid()}: cannot start: {exc}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    except Exception:
        log.exception("reference gateway worker %s: cannot start", os.getpid())
        sys.exit(STARTUP_FAILURE)
    return WorkerApp(app, handoff=Path(path), parent_pid=payload["parent_pid"],
                     pid_header=os.environ.get(PID_HEADER_ENV) == "1")


# -- the supervisor ------------------------------------------------------------------------
def bind(host: str, port: int) -> socket.socket:
    """The listening socket, IPPROTO_TCP so that accepted connections get TCP_NODELAY."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise WorkersError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _supervisor_class():
    from uvicorn.supervisors.multiprocess import Multiprocess  # deferred, as in serve_workers

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, with a bounded stop: SIGKILL for a worker past the deadline."""

        def join_all(self) -> None:
            deadline = time.monotonic() + STOP_DEADLINE_S
            for process in self.processes:
                process.process.join(max(0.0, deadline - time.monotonic()))
            for process in self.processes:
                if process.process.is_alive():
                    log.warning("worker %s did not stop within %g s: killed", process.pid, STOP_DEADLINE_S)
                    process.process.kill()
                    process.process.join(5.0)

    return Supervisor


def serve_workers(config: GatewayConfig, *, host: str, port: int, workers: int, log_level: str = "info",
                  notify: Callable[[str], None] | None = None, uvicorn_options: dict | None = None) -> int:
    """Serve ``config`` with ``workers`` processes on ``host:port`` until SIGTERM / SIGINT.
    ``uvicorn_options`` go to each worker's ``uvicorn.Config`` (e.g. ``log_config``).

    Raises ``WorkersError`` (one line) when the store cannot be shared or opened, the port
    cannot be bound, or a worker fails to start."""
    import uvicorn  # deferred: uvicorn is imported only where a server starts
    from uvicorn.config import STARTUP_FAILURE

    say = notify or (lambda line: print(line, file=sys.stderr))
    reason = refusal(workers, config.store_location)
    if reason:
        raise WorkersError(reason)
    try:  # create the schema once, and fail here (one line) rather than in N workers
        open_store(config.store_location).close()
    except StoreError as exc:
        raise WorkersError(str(exc)) from None
    from uvicorn.supervisors.multiprocess import SIGNALS  # deferred, as above

    from reference_gateway.http_protocol import UVICORN_OPTIONS  # imports uvicorn: deferred too

    sock = bind(host, port)
    uv_config = uvicorn.Config(
        "reference_gateway.worker:create_worker_app", factory=True, workers=workers, log_level=log_level,
        lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S, **UVICORN_OPTIONS, **(uvicorn_options or {}))
    saved_env = {name: os.environ.get(name) for name in (CONFIG_ENV, PROMETHEUS_ENV)}
    saved_signals = {sig: signal.getsignal(sig) for sig in SIGNALS}
    private = None
    try:
        # From here a SIGTERM / SIGINT is queued by the supervisor, never fatal: the private
        # directory made next is always removed.
        supervisor = _supervisor_class()(uv_config, sockets=[sock])
        private = Path(tempfile.mkdtemp(prefix="reference-gateway-workers-"))  # mode 0700
        os.environ[CONFIG_ENV] = str(write_handoff(config, private, parent_pid=os.getpid()))
        if not os.environ.get(PROMETHEUS_ENV):
            (private / "prometheus").mkdir(mode=0o700)
            os.environ[PROMETHEUS_ENV] = str(private / "prometheus")
        bound_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        say(f"reference gateway on http://{shown}:{bound_port}/v1 -> {config.upstream_url} "
            f"({workers} workers, supervisor pid {os.getpid()})")
        supervisor.run()
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            raise WorkersError("a worker failed to start (its error is in the log above)")
        return 0
    finally:
        for sig, handler in saved_signals.items():  # uvicorn's handlers only queue signals
            signal.signal(sig, handler)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        sock.close()
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
