"""``python -m reference_gateway.sandbox``: the code sandbox from the command line.

``serve --port P``: the sandbox service (external.py's protocol, service.py) over the spawn
mode, for a gateway started with ``--code-interpreter external --code-interpreter-url``.
``run CODE`` (or ``run -`` for stdin): one cell in the spawn mode, its result as JSON on
stdout; what the startup cost in the README was measured with. Exit 2 with a one-line reason
when the sandbox cannot run (DESIGN: output contract).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from .contract import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_SCRATCH_BYTES,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    SandboxError,
    SandboxLimits,
)
from .service import DEFAULT_MAX_TIMEOUT_S, create_app
from .spawn import SpawnSandbox


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, then exit 2
        print(f"{self.prog}: {message} (run with --help for usage)", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m reference_gateway.sandbox", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the sandbox protocol over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--max-timeout-s", type=float, default=DEFAULT_MAX_TIMEOUT_S,
                       help=f"longest cell a caller may ask for ({DEFAULT_MAX_TIMEOUT_S:g})")
    run = sub.add_parser("run", help="run one cell and print its result as JSON")
    run.add_argument("code", help="the Python code, or - to read it from stdin")
    for cmd in (serve, run):
        cmd.add_argument("--scratch-root", metavar="DIR",
                         help="where each cell's /mnt/data folder is made (default: temp folder)")
        cmd.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S)
        cmd.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
        cmd.add_argument("--max-output-bytes", type=int, default=DEFAULT_MAX_OUTPUT_BYTES)
        cmd.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES)
        cmd.add_argument("--max-scratch-bytes", type=int, default=DEFAULT_MAX_SCRATCH_BYTES)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    try:
        limits = SandboxLimits(timeout_s=args.timeout_s, memory_mb=args.memory_mb,
                               max_output_bytes=args.max_output_bytes,
                               max_file_bytes=args.max_file_bytes,
                               max_scratch_bytes=args.max_scratch_bytes)
        sandbox = SpawnSandbox(limits=limits, scratch_root=args.scratch_root)
    except SandboxError as exc:
        print(f"python -m reference_gateway.sandbox: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        code = sys.stdin.read() if args.code == "-" else args.code
        try:
            result = asyncio.run(sandbox.run(code))
        except SandboxError as exc:
            print(f"python -m reference_gateway.sandbox: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(asdict(result)))
        return 0
    import uvicorn  # deferred: only ``serve`` runs a server (``run`` is one cell and out)

    app = create_app(sandbox, max_timeout_s=args.max_timeout_s)
    print(f"code sandbox service on http://{args.host}:{args.port} (protocol: "
          "reference_gateway/sandbox/external.py)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
