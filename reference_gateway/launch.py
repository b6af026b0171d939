"""Start the gateway and the mock upstream in-process, each under uvicorn in a daemon thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from reference_gateway import mock_upstream
from reference_gateway.app import create_app
from reference_gateway.config import GatewayConfig
from reference_gateway.http_protocol import UVICORN_OPTIONS

STARTUP_DEADLINE_S = 10.0
SHUTDOWN_DEADLINE_S = 5.0


class RunningServer:
    """An ASGI app served on ``host:port`` until ``close()``. ``port=0`` picks a free port.

    The socket is bound here, before the server starts, so the port is known and held with no
    window for another process to take it.
    """

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, name: str = "server",
                 uvicorn_options: dict | None = None) -> None:
        self.app = app
        self.name = name
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # without it each small SSE write waits for the client's delayed ACK (~40 ms).
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise RuntimeError(f"{name}: cannot bind {host}:{port}: {exc}") from None
        self.host = host
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2,
                                **(uvicorn_options or {}))
        self._server = uvicorn.Server(config)  # signal handlers are skipped off the main thread
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"{name}:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{name} did not start on {host}:{self.port} within {STARTUP_DEADLINE_S} s")
            time.sleep(0.01)

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_DEADLINE_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_DEADLINE_S)
        self._socket.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def start_mock_upstream(*, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    return RunningServer(mock_upstream.create_app(), host=host, port=port, name="mock upstream")


def start_gateway(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    return RunningServer(create_app(config), host=host, port=port, name="reference gateway",
                         uvicorn_options=UVICORN_OPTIONS)


class EmbeddedTarget:
    """The mock upstream with the gateway in front of it: the harness's default target."""

    def __init__(self, upstream: RunningServer, gateway: RunningServer, config: GatewayConfig) -> None:
        self.upstream = upstream
        self.gateway = gateway
        self.config = config

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    def close(self) -> None:
        self.gateway.close()
        self.upstream.close()

    def __enter__(self) -> EmbeddedTarget:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def start_embedded(*, host: str = "127.0.0.1", port: int = 0, **config_fields) -> EmbeddedTarget:
    """Start the mock upstream and a gateway fronting it; ``config_fields`` go to GatewayConfig."""
    upstream = start_mock_upstream(host=host)
    try:
        config = GatewayConfig(upstream_url=upstream.base_url, **config_fields)
        gateway = start_gateway(config, host=host, port=port)
    except BaseException:
        upstream.close()
        raise
    return EmbeddedTarget(upstream, gateway, config)
