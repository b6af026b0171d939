"""``python -m reference_gateway``: serve the gateway (in front of the mock upstream by default).

Stored responses go to the SQLite file ``--db`` (default ``./respcheck-gateway.sqlite3``), so
``previous_response_id`` chains and background responses survive a restart; ``--db :memory:``
keeps them for the life of the process only (the default of ``GatewayConfig``, used in-process
by the test suite and the embedded target).
"""

from __future__ import annotations

import argparse
import sys

from reference_gateway.config import GatewayConfig

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
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    import uvicorn

    from reference_gateway.app import create_app
    from reference_gateway.launch import start_mock_upstream

    mock = None
    upstream_url = args.upstream
    if upstream_url is None:
        mock = start_mock_upstream(host="127.0.0.1")
        upstream_url = mock.base_url
    try:
        try:
            config = GatewayConfig(
                upstream_url=upstream_url,
                upstream_api_key=args.upstream_api_key,
                db_path=args.db,
                request_timeout_s=args.timeout,
                done_sentinel=args.done_sentinel,
            )
        except ValueError as exc:
            p.error(str(exc))
        print(f"reference gateway on http://{args.host}:{args.port}/v1 -> {upstream_url}", file=sys.stderr)
        uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")
    finally:
        if mock is not None:
            mock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
