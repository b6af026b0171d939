"""``respcheck serve``: the reference gateway, optionally with the vLLM it fronts.

    respcheck serve [GATEWAY FLAGS]                          # = python -m reference_gateway
    respcheck serve --spawn-vllm tool [--workers 2] [...]    # vLLM on the harness's tool model
    respcheck serve --spawn-vllm MODEL_DIR_OR_NAME --vllm-arg "--max-num-seqs 8" [...]

Without ``--spawn-vllm`` every flag goes to the gateway (``reference_gateway/__main__.py``),
unchanged. With it, this process is a supervisor:

1. it checks the gateway's flags first (a mistake costs no vLLM start);
2. starts ``python -m vllm.entrypoints.openai.api_server`` from vLLM's venv
   (``.venv-vllm`` or ``$RESPCHECK_VLLM_PYTHON``, as ``--target vllm`` does) on 127.0.0.1 and a
   free port (``--vllm-port``), in its own process group, its output in ``--vllm-log``;
   ``tool`` (the trained tool-following model) and ``tiny`` (the random-weight Llama of
   harness/targets/model_dir.py) are the harness's own models (harness/targets/vllm_model.py),
   with the flags and environment of ``--target vllm`` (harness/targets/target.py); any other value is vLLM's
   ``--model`` as given, with only ``--vllm-arg`` values added (each one split like a shell
   word list: ``--vllm-arg "--max-num-seqs 8"`` or ``--vllm-arg=--enforce-eager``);
3. waits until ``GET /v1/models`` answers, at most ``--start-timeout`` seconds (default
   ``$RESPCHECK_START_TIMEOUT`` or 300); past it, or when vLLM exits first, one line naming
   the log, exit 2, and nothing left running;
4. runs the gateway with ``--upstream`` set to that vLLM (``--workers N`` works too);
5. when the gateway stops (SIGTERM, SIGINT / Ctrl-C) stops vLLM's whole process group
   (SIGTERM, SIGKILL after 10 s: harness/targets/spawn.py). If vLLM dies while serving, the gateway
   is stopped too and the exit code is 1.

The gateway package never imports the harness (DESIGN.md principle 2); this file imports it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from harness.targets.model_dir import cache_root
from harness.targets.spawn import SpawnedServer, SpawnError, free_port
from harness.targets.target import (
    VLLM_ARGS,
    VLLM_ENV,
    TargetError,
    resolve_start_timeout,
    vllm_python,
)
from harness.targets.vllm_model import TINY, TOOL, ModelChoiceError, choose
from reference_gateway.worker import refusal

PROG = "respcheck serve"
VLLM_LOG_NAME = "serve-vllm.log"
# How often the watchdog looks whether vLLM still runs while the gateway serves.
WATCH_INTERVAL_S = 0.5


class _Stopped(BaseException):
    """SIGTERM / SIGINT arrived: unwind (BaseException: no ``except Exception`` swallows it)."""


def _supervisor_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, add_help=False, allow_abbrev=False,
        usage=f"{PROG} [--spawn-vllm MODEL_DIR_OR_NAME [--vllm-arg ARGS] [--vllm-port PORT] [--vllm-log FILE] "
              "[--start-timeout SECONDS]] [GATEWAY FLAGS]",
        description="The reference gateway (GATEWAY FLAGS, below). With --spawn-vllm, vLLM is started first, "
                    "waited for, served by the gateway, and stopped with it (harness/targets/serve.py).")
    p.add_argument("--spawn-vllm", metavar="MODEL_DIR_OR_NAME",
                   help="start vLLM on this model and serve the gateway in front of it ('tool': the "
                   "harness's tool-following model, as --target vllm; 'tiny': its random-weight model)")
    p.add_argument("--vllm-arg", action="append", default=[], metavar="ARGS",
                   help="more flags for vLLM's api_server, split like shell words (repeatable; "
                   "--vllm-arg=--enforce-eager or --vllm-arg \"--max-num-seqs 8\")")
    p.add_argument("--vllm-port", type=int, metavar="PORT", help="vLLM's port on 127.0.0.1 (default: a free one)")
    p.add_argument("--vllm-log", metavar="FILE", help="vLLM's output (default: the respcheck cache's "
                   f"logs/{VLLM_LOG_NAME})")
    p.add_argument("--start-timeout", type=float, metavar="SECONDS",
                   help="how long vLLM may take to be ready (default: $RESPCHECK_START_TIMEOUT or 300)")
    p.add_argument("-h", "--help", action="store_true")
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    # deferred: the gateway's command line brings in starlette (and uvicorn to serve)
    from reference_gateway.__main__ import main as gateway_main
    from reference_gateway.__main__ import parser as gateway_parser

    argv = list(sys.argv[1:] if argv is None else argv)
    sup = _supervisor_parser()
    opts, rest = sup.parse_known_args(argv)
    if opts.help:
        sup.print_help()
        print("\nGATEWAY FLAGS:")
        return gateway_main(["--help"])
    if opts.spawn_vllm is None:
        extra = [flag for flag, value in (("--vllm-arg", opts.vllm_arg), ("--vllm-port", opts.vllm_port),
                                          ("--vllm-log", opts.vllm_log), ("--start-timeout", opts.start_timeout))
                 if value]
        if extra:
            return _fail(f"{extra[0]} needs --spawn-vllm")
        return gateway_main(rest)

    gw = gateway_parser().parse_args(rest)  # the gateway's own mistakes exit 2 now, before vLLM starts
    if gw.upstream or getattr(gw, "routes", None):
        return _fail("--spawn-vllm starts the upstream: give it or --upstream/--routes, not both")
    if refusal(getattr(gw, "workers", 1), gw.db):
        return _fail(refusal(gw.workers, gw.db))
    try:
        vllm_args = [word for value in opts.vllm_arg for word in shlex.split(value)]
    except ValueError as exc:
        return _fail(f"--vllm-arg: {exc}")
    return _serve_with_vllm(opts, vllm_args, rest, gateway_main)


def _vllm_command(model: str, extra: list[str], port: int) -> tuple[list[str], dict[str, str]]:
    """vLLM's argv and environment (raises TargetError: not installed, no usable model)."""
    python = vllm_python()
    if not python.exists():
        raise TargetError(f"vllm is not installed ({python} is missing): run scripts/install-vllm.sh")
    head = [str(python), "-m", "vllm.entrypoints.openai.api_server"]
    if model not in (TINY, TOOL):
        return [*head, "--model", model, "--host", "127.0.0.1", "--port", str(port), *extra], dict(os.environ)
    try:
        chosen = choose(model)
    except (ModuleNotFoundError, ModelChoiceError) as exc:
        raise TargetError(str(exc)) from None
    except OSError as exc:
        raise TargetError(f"cannot write the tiny model under {cache_root()}: {exc}; set $RESPCHECK_CACHE") from None
    return ([*head, "--model", str(chosen.path), *VLLM_ARGS, *chosen.args, "--host", "127.0.0.1",
             "--port", str(port), *extra], os.environ | VLLM_ENV)


def _serve_with_vllm(opts: argparse.Namespace, vllm_args: list[str], rest: list[str], gateway_main) -> int:
    stopping = threading.Event()
    died: list[int] = []

    def on_signal(signum, _frame) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second one must not cut the cleanup short
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = None
    try:
        try:
            timeout = resolve_start_timeout(opts.start_timeout)
            port = opts.vllm_port or free_port()
            argv, env = _vllm_command(opts.spawn_vllm, vllm_args, port)
        except TargetError as exc:
            return _fail(exc)
        log = Path(opts.vllm_log) if opts.vllm_log else cache_root() / "logs" / VLLM_LOG_NAME
        if log.exists():
            log.unlink()  # one run per log
        print(f"{PROG}: starting vllm ({opts.spawn_vllm}) on 127.0.0.1:{port}; log {log}; up to {timeout:g} s",
              file=sys.stderr)
        server = SpawnedServer(argv, ready_url=f"http://127.0.0.1:{port}/v1/models", log_path=log,
                               name="vllm", env=env, start_timeout_s=timeout)
        try:
            server.start()
        except SpawnError as exc:
            return _fail(exc)
        print(f"{PROG}: vllm ready after {server.ready_after_s:.1f} s (pid {server.pid})", file=sys.stderr)

        def watch() -> None:  # vLLM gone while serving: stop the gateway too
            while not stopping.wait(WATCH_INTERVAL_S):
                code = server.process.poll()
                if code is not None:
                    died.append(code)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

        threading.Thread(target=watch, name="vllm-watchdog", daemon=True).start()
        code = gateway_main([*rest, "--upstream", f"http://127.0.0.1:{port}/v1"])
    except _Stopped:
        code = 0
    finally:
        stopping.set()
        if server is not None:
            server.close()  # idempotent: a start that failed has closed it already
            if server.ready_after_s is not None:
                print(f"{PROG}: vllm stopped", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if died:
        return _fail(f"vllm exited with code {died[0]} while the gateway was serving; see {server.log_path}", 1)
    return code
