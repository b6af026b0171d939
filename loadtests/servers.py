"""Servers for load tests, each in a process of its own (never threads of the load generator).

``python -m loadtests.servers mock|gateway|embedded [--upstream URL] [--host H] [--port P]
[--config JSON]`` (``--config``: more GatewayConfig fields, e.g. ``{"metrics": false}``)
binds its socket (port 0: a free one), prints one JSON line ``{"base_url": ...}`` on stdout
once it accepts connections, and serves until SIGTERM/SIGINT. ``spawn()`` is the parent side.

- ``mock``: the embedded deterministic chat-completions upstream (``mock-paced`` for fixed
  pacing);
- ``paced``: ``mock-paced`` alone, lean (loadtests/paced_upstream.py: the overhead benchmark's
  upstream);
- ``gateway``: the reference gateway in front of ``--upstream``;
- ``embedded``: both in one process (the mock in a thread), ``respcheck load``'s default target;
- ``relay``: a byte-for-byte TCP proxy in front of ``--upstream`` (loadtests/relay.py: the floor
  of any Python relay, ``overhead.py --floor``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_DEADLINE_S = 30.0


class ServerProcess:
    def __init__(self, proc: subprocess.Popen, base_url: str, kind: str) -> None:
        self.proc = proc
        self.base_url = base_url
        self.kind = kind

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spawn(kind: str, *, upstream: str | None = None, host: str = "127.0.0.1", port: int = 0,
          log: Path | None = None, env: dict[str, str] | None = None,
          deadline_s: float = READY_DEADLINE_S, config: dict | None = None,
          code_root: Path | None = None, reuse_port: bool = False) -> ServerProcess:
    """Start a server process; ``code_root``: the tree whose code it runs (default: this one;
    loadtests/store_cost.py runs an older revision's)."""
    cmd = [sys.executable, "-m", "loadtests.servers", kind, "--host", host, "--port", str(port)]
    if upstream:
        cmd += ["--upstream", upstream]
    if config:
        cmd += ["--config", json.dumps(config)]
    if reuse_port:
        cmd += ["--reuse-port"]
    err = open(log, "ab") if log else subprocess.DEVNULL
    repo_root = str(code_root or Path(__file__).resolve().parent.parent)
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = repo_root + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=full_env,
                            cwd=repo_root if code_root else None)  # -m puts the cwd first on sys.path
    if log:
        err.close()
    deadline = time.monotonic() + deadline_s
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            proc.kill()
            proc.wait(5)
            raise RuntimeError(f"the {kind} server did not start within {deadline_s:.0f} s"
                               + (f" (log: {log})" if log else ""))
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                continue
            line += chunk
    info = json.loads(line.decode().splitlines()[0])
    return ServerProcess(proc, info["base_url"], kind)


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on an accepted connection only when
    # the listening socket's proto is IPPROTO_TCP (base_events._set_nodelay); with the default
    # proto 0 Nagle stays on, and a small SSE write waits for the client's delayed ACK (~40 ms
    # on Linux once a kept-alive connection leaves quick-ACK mode).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several processes serve one port, the kernel spreads the connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.servers")
    p.add_argument("kind", choices=("mock", "paced", "gateway", "embedded", "relay"))
    p.add_argument("--upstream", help="chat-completions base URL (gateway)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--config", default="{}", help="more GatewayConfig fields, as a JSON object")
    p.add_argument("--reuse-port", action="store_true",
                   help="SO_REUSEPORT: start more servers on the same --port (overhead.py --mock-workers)")
    args = p.parse_args(argv)
    if args.kind == "relay":
        from loadtests import relay

        if not args.upstream:
            p.error("relay needs --upstream")
        return relay.main(["--upstream", args.upstream, "--host", args.host, "--port", str(args.port)])
    if args.kind == "paced":
        from loadtests import paced_upstream

        return paced_upstream.run(_bind(args.host, args.port, reuse_port=args.reuse_port))
    import uvicorn

    from reference_gateway.config import GatewayConfig

    helper = None
    if args.kind == "mock":
        from reference_gateway import mock_upstream

        app = mock_upstream.create_app()
    else:
        from reference_gateway.app import create_app

        upstream = args.upstream
        if args.kind == "embedded":
            from reference_gateway.launch import start_mock_upstream

            helper = start_mock_upstream()
            upstream = helper.base_url
        if not upstream:
            p.error("gateway needs --upstream")
        app = create_app(GatewayConfig(upstream_url=upstream, **json.loads(args.config)))
    from reference_gateway.process import tune_gc

    tune_gc()  # as python -m reference_gateway does (the mock too: a cheaper upstream)
    sock = _bind(args.host, args.port, reuse_port=args.reuse_port)
    port = sock.getsockname()[1]
    # As ``python -m reference_gateway`` serves (uvicorn.run): the gateway's own HTTP protocol
    # (http_protocol.py) and uvicorn's event loop choice ("auto": uvloop when installed, as it is
    # with uvicorn[standard]). The mock upstream gets uvloop too: a cheaper upstream leaves more
    # of the machine's two cores to what is measured.
    options = {}
    if args.kind != "mock":
        from reference_gateway.http_protocol import UVICORN_OPTIONS

        options = dict(UVICORN_OPTIONS)
    uv_config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2,
                               access_log=False, **options)
    server = uvicorn.Server(uv_config)
    host = f"[{args.host}]" if ":" in args.host else args.host

    async def announce() -> None:
        import asyncio

        while not server.started:
            await asyncio.sleep(0.01)
        sys.stdout.write(json.dumps({"base_url": f"http://{host}:{port}/v1", "pid": os.getpid()}) + "\n")
        sys.stdout.flush()

    async def serve() -> None:
        import asyncio

        task = asyncio.create_task(announce())
        await server.serve(sockets=[sock])
        task.cancel()

    import asyncio

    try:
        with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
            runner.run(serve())
    finally:
        if helper is not None:
            helper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
