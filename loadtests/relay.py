"""The floor of any Python relay: a byte-for-byte TCP proxy on asyncio protocols (uvloop when
installed), for ``python -m loadtests.overhead --floor``.

It parses nothing, translates nothing and holds no HTTP state: each connection a client opens
gets one connection to the upstream, and whatever one side's socket hands over is written to the
other's, in the same loop turn. Relaying a streamed chat completion through it costs, per event,
one ``recv`` from the upstream and one ``send`` to the client, plus the event loop's wake-up:
what every server written in Python pays per event it forwards when it arrives (the reference
gateway, LiteLLM, open-responses-server). Its CPU time per token event, read by the benchmark
the way the gateway's is, is therefore the floor under issue 20's "gateway CPU per relayed
token event" goal on the machine it runs on: a figure below it needs fewer writes than events,
i.e. holding events back, which the TTFT and ITL goals forbid.

``python -m loadtests.relay --upstream http://127.0.0.1:PORT/v1 [--port 0]`` prints one JSON
line ``{"base_url": ..., "pid": ...}`` once it listens (as loadtests/servers.py does) and serves
until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from urllib.parse import urlsplit


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: what it receives goes to ``peer``'s transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.early: list[bytes] = []  # what arrived before the other side was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Downstream(_Pipe):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self._target = (host, port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(_Pipe, *self._target)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        up.peer, self.peer = self, up
        for data in self.early:
            up.transport.write(data)  # type: ignore[union-attr]
        self.early.clear()


async def serve_until_signalled(server: asyncio.AbstractServer, path: str) -> None:
    """Announce ``server``'s base URL (``http://HOST:PORT`` + ``path``) on stdout as one JSON line,
    as loadtests/servers.py's processes do, and serve until SIGTERM/SIGINT (also the lean paced
    mock's, loadtests/paced_upstream.py)."""
    host, port = server.sockets[0].getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    sys.stdout.write(json.dumps({"base_url": f"http://{host}:{port}{path}", "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def run_on_uvloop(main) -> None:
    """``asyncio.run(main)`` on uvloop when installed, as the benchmark's other servers run."""
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


async def serve(upstream: str, host: str, port: int) -> None:
    parts = urlsplit(upstream)
    server = await asyncio.get_running_loop().create_server(
        lambda: _Downstream(parts.hostname or "127.0.0.1", parts.port or 80), host, port)
    await serve_until_signalled(server, parts.path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.relay", description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="the chat-completions base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    run_on_uvloop(serve(args.upstream, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
