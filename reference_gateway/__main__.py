"""``python -m reference_gateway``: serve the gateway (in front of the mock upstream by default).

Stored responses go to the SQLite file ``--db`` (default ``./respcheck-gateway.sqlite3``), so
``previous_response_id`` chains and background responses survive a restart; ``--db :memory:``
keeps them for the life of the process only (the default of ``GatewayConfig``, used in-process
by the test suite and the embedded target). ``--store`` is the same setting under its newer
name, and also takes a ``postgresql://`` URL (several gateways on several machines, one store).

``--api-key KEY`` (repeatable) and ``--api-keys-file FILE`` make the gateway require
``Authorization: Bearer KEY`` on every route but /health; each key's responses are its own
(reference_gateway/auth.py). Without them the gateway is open: run it on loopback only.

``GET /metrics`` serves Prometheus metrics (``--no-metrics``: none); ``--log-format json`` writes
one JSON object per line on stderr; ``OTEL_EXPORTER_OTLP_ENDPOINT`` (with the ``otel`` extra
installed) sends traces (reference_gateway/observe.py).
"""

from __future__ import annotations

import argparse
import sys

from reference_gateway import logs
from reference_gateway.app import create_app
from reference_gateway.auth import read_keys_file
from reference_gateway.builtin.config import BuiltinConfig, ConfigError, read_config
from reference_gateway.config import (
    CODE_INTERPRETER_MODES,
    DEFAULT_MAX_BODY_BYTES,
    GatewayConfig,
)
from reference_gateway.readiness import UpstreamNotReady, wait_for_upstream
from reference_gateway.routing import RoutesError, read_routes
from reference_gateway.sandbox.contract import SandboxError
from reference_gateway.sealing import SealKeyError, new_key, read_key_file
from reference_gateway.store_contract import StoreError
from reference_gateway.worker import WorkersError, serve_workers
from reference_gateway.worker import refusal as workers_refusal

DEFAULT_DB = "respcheck-gateway.sqlite3"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, then exit 2 (DESIGN: output contract)
        print(f"{self.prog}: {message} (run with --help for usage)", file=sys.stderr)
        sys.exit(2)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


_port.__name__ = "port"  # argparse names the converter in its message: "invalid port value"


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m reference_gateway", description=__doc__)
    p.add_argument("--upstream", metavar="URL", help="chat-completions base URL, e.g. http://127.0.0.1:8000/v1 "
                   "(default: start the embedded deterministic mock upstream)")
    p.add_argument("--upstream-api-key", metavar="KEY", help="sent as 'Authorization: Bearer KEY' to the upstream")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument("--db", metavar="PATH", default=DEFAULT_DB,
                   help=f"SQLite file for stored responses (default: {DEFAULT_DB}; ':memory:' for none)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="upstream request deadline")
    p.add_argument("--done-sentinel", action="store_true", help="end streams with 'data: [DONE]' (Open Responses)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, metavar="BYTES",
                   help=f"largest request body (default: {DEFAULT_MAX_BODY_BYTES} = 1 MiB); beyond it: 413 "
                   "with the error envelope")
    # -- upstream faults and readiness (issue 6)
    p.add_argument("--stream-first-token-timeout", type=float, metavar="SECONDS",
                   help="a streamed upstream call must send its first chunk within this (default: --timeout)")
    p.add_argument("--stream-idle-timeout", type=float, metavar="SECONDS",
                   help="longest silence of a streamed upstream call after its first chunk (default: 30, "
                   "or --timeout when smaller)")
    p.add_argument("--stream-timeout", type=float, metavar="SECONDS",
                   help="a whole streamed upstream call, however it trickles (default: --timeout, the "
                   "deadline of a non-streamed one)")
    p.add_argument("--upstream-max-line-bytes", type=int, default=1024 * 1024, metavar="BYTES",
                   help="largest SSE line of an upstream stream (default: 1 MiB); beyond it: 502")
    p.add_argument("--upstream-max-body-bytes", type=int, default=16 * 1024 * 1024, metavar="BYTES",
                   help="largest non-streamed upstream answer (default: 16 MiB); beyond it: 502")
    p.add_argument("--upstream-wait", type=float, default=60.0, metavar="SECONDS",
                   help="before serving, wait this long for GET {upstream}/models to answer (default: 60; "
                   "0: do not wait)")
    p.add_argument("--upstream-poll-interval", type=float, default=0.5, metavar="SECONDS",
                   help="time between two tries while waiting for the upstream (default: 0.5)")
    # -- auth and store (issue 6)
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="require 'Authorization: Bearer KEY' (repeatable; each key is its own tenant; "
                   "prefer --api-keys-file: a command line is visible to other users in ps)")
    p.add_argument("--api-keys-file", metavar="FILE",
                   help="API keys, one per line; blank lines and lines starting with '#' are skipped")
    p.add_argument("--store", dest="db", metavar="PATH_OR_URL",
                   help="where stored responses go: a SQLite file (the default, same as --db) or "
                   "postgresql://USER@HOST:PORT/DB (password: PGPASSWORD or ~/.pgpass rather than the URL)")
    p.add_argument("--orphan-after", type=float, default=30.0, metavar="SECONDS",
                   help="a background response whose gateway process stopped for this long is stored "
                   "as failed (default: 30)")
    # -- built-in tools (issue 7)
    p.add_argument("--mcp-config", metavar="FILE",
                   help="MCP servers by label, allowServerUrls and webSearchProfiles (JSON; "
                   "reference_gateway/builtin/config.py)")
    p.add_argument("--code-interpreter", choices=CODE_INTERPRETER_MODES, default="auto",
                   help="where code_interpreter runs Python: spawn (a Pyodide sandbox per call; "
                   "bash scripts/install-pyodide.sh), external (--code-interpreter-url), disabled, or auto "
                   "(spawn when installed, else disabled; the default)")
    p.add_argument("--code-interpreter-url", metavar="URL",
                   help="the sandbox service for --code-interpreter external (python -m reference_gateway.sandbox serve)")
    p.add_argument("--web-search-profile", metavar="NAME",
                   help="serve web_search tools with this webSearchProfiles entry of --mcp-config")
    p.add_argument("--tool-loop-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="deadline of one response's whole tool loop (default: 300)")
    # -- upstreams (issue 8)
    p.add_argument("--routes", metavar="FILE",
                   help="several upstreams routed by model (JSON: upstreams with url/api_key_env/api_kind, "
                   "routes by model or prefix; reference_gateway/routing.py); replaces --upstream")
    p.add_argument("--upstream-api-kind", choices=("chat_completions", "responses"), default="chat_completions",
                   help="what --upstream speaks: chat completions (default) or a native /v1/responses, in front "
                   "of which the gateway keeps store, previous_response_id and GET (native.py)")
    p.add_argument("--history-cache-size", type=int, default=1024, metavar="N",
                   help="finished responses kept in memory for previous_response_id chains (default 1024; 0: off)")
    p.add_argument("--history-cache-ttl", type=float, default=300.0, metavar="SECONDS",
                   help="how long one is kept (default 300); a hit is still checked against the store")
    # -- workers (issue 8; reference_gateway/worker.py)
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="serve with N worker processes on one port, sharing the store (a SQLite file or "
                   "postgresql://; not :memory:); the mock upstream, if any, runs once in the supervisor "
                   "(default: 1, in this process)")
    # -- observability (issue 8; reference_gateway/observe.py)
    p.add_argument("--log-format", choices=logs.LOG_FORMATS, default="text",
                   help="text (default: uvicorn's lines) or json: one JSON object per line on stderr, with an "
                   "access line per request carrying its response id (reference_gateway/logs.py)")
    p.add_argument("--no-metrics", dest="metrics", action="store_false",
                   help="serve no GET /metrics and count nothing (default: Prometheus metrics on /metrics, "
                   "open like /health)")
    # -- WebSocket mode (reference_gateway/websocket.py)
    p.add_argument("--ws-max-connection-seconds", type=float, default=3600.0, metavar="SECONDS",
                   help="lifetime of a WebSocket connection to /v1/responses: past it, its next turn gets the "
                   "error websocket_connection_limit_reached and the socket is closed (default: 3600, as OpenAI)")
    # -- sealed blobs (reference_gateway/sealing.py)
    p.add_argument("--seal-key-file", metavar="FILE",
                   help="the key compaction items and reasoning encrypted_content are sealed with (64 hex digits, "
                   "e.g. `openssl rand -hex 32`, or 32+ raw bytes); gateways and restarts that share it accept "
                   "each other's blobs (default: a random key per start)")
    return p


def _workers(text: str) -> int:
    workers = int(text)
    if workers < 1:
        raise ValueError(text)
    return workers


_workers.__name__ = "worker count"


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    logs.configure(args.log_format)  # -- observability (issue 8): json lines from here on
    if workers_refusal(args.workers, args.db):  # -- workers (issue 8): before anything starts
        p.error(workers_refusal(args.workers, args.db))
    # Deferred to where a server starts: uvicorn (launch.py imports it too), not needed by
    # ``--help``, by a refused option, or by the harness that imports ``parser``.
    import uvicorn

    from reference_gateway.http_protocol import UVICORN_OPTIONS
    from reference_gateway.launch import start_mock_upstream
    from reference_gateway.process import tune_gc

    routes = None
    if args.routes:
        if args.upstream:
            p.error("give --routes or --upstream, not both")
        try:
            routes = read_routes(args.routes)
        except RoutesError as exc:
            p.error(str(exc))
    mock = None
    upstream_url = args.upstream or (next(iter(routes.upstreams.values())).url if routes else None)
    if upstream_url is None:
        mock = start_mock_upstream(host="127.0.0.1")
        upstream_url = mock.base_url
    try:
        try:
            builtin = read_config(args.mcp_config) if args.mcp_config else BuiltinConfig()
        except ConfigError as exc:
            p.error(str(exc))
        try:
            seal_key = read_key_file(args.seal_key_file) if args.seal_key_file else new_key()
        except SealKeyError as exc:
            p.error(str(exc))
        try:
            config = GatewayConfig(
                upstream_url=upstream_url,
                upstream_api_key=args.upstream_api_key,
                db_path=args.db,
                request_timeout_s=args.timeout,
                done_sentinel=args.done_sentinel,
                max_body_bytes=args.max_body_bytes,
                api_keys=tuple(args.api_key) + (read_keys_file(args.api_keys_file) if args.api_keys_file else ()),
                orphan_after_s=args.orphan_after,
                # -- upstream faults and readiness (issue 6)
                stream_first_token_timeout_s=args.stream_first_token_timeout,
                stream_idle_timeout_s=args.stream_idle_timeout,
                stream_timeout_s=args.stream_timeout,
                upstream_max_line_bytes=args.upstream_max_line_bytes,
                upstream_max_body_bytes=args.upstream_max_body_bytes,
                upstream_wait_s=args.upstream_wait,
                upstream_poll_interval_s=args.upstream_poll_interval,
                builtin=builtin,
                code_interpreter=args.code_interpreter,
                code_interpreter_url=args.code_interpreter_url,
                web_search_profile=args.web_search_profile,
                tool_loop_timeout_s=args.tool_loop_timeout,
                routes=routes,
                upstream_api_kind=args.upstream_api_kind,
                history_cache_entries=args.history_cache_size,
                history_cache_ttl_s=args.history_cache_ttl,
                metrics=args.metrics, log_format=args.log_format,  # -- observability (issue 8)
                ws_max_connection_s=args.ws_max_connection_seconds,  # -- WebSocket mode
                seal_key=seal_key,  # -- sealed blobs
            )
        except ValueError as exc:
            p.error(str(exc))
        if config.upstream_wait_s > 0:  # -- upstream readiness (issue 6)
            try:
                for spec in config.upstream_specs:
                    wait_for_upstream(spec.url, api_key=spec.api_key,
                                      wait_s=config.upstream_wait_s, interval_s=config.upstream_poll_interval_s,
                                      notify=logs.announcer(args.log_format))
            except UpstreamNotReady as exc:
                p.exit(2, f"{p.prog}: {exc}\n")
        if args.workers > 1:  # -- workers (issue 8): this process supervises N workers
            try:
                return serve_workers(config, host=args.host, port=args.port, workers=args.workers,
                                     notify=logs.announcer(args.log_format),
                                     uvicorn_options=logs.uvicorn_options(args.log_format))
            except WorkersError as exc:
                p.exit(2, f"{p.prog}: {exc}\n")
        logs.announcer(args.log_format)(f"reference gateway on http://{args.host}:{args.port}/v1 -> {upstream_url}")
        try:
            app = create_app(config)  # opens the store (a file that is not SQLite, Postgres down), the sandbox
        except (StoreError, SandboxError) as exc:
            p.exit(2, f"{p.prog}: {exc}\n")
        tune_gc()
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", **UVICORN_OPTIONS,
                    **logs.uvicorn_options(args.log_format))
    finally:
        if mock is not None:
            mock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
