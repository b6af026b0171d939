"""A streamed upstream request gives its connection back to the pool: after ``data: [DONE]``
the rest of the body is read before the response is closed (upstream.py, ``UpstreamStream.aclose``).
Closed unread, the connection is dropped and every stream pays a new one (issue 20).

Both ways a stream goes out: on the wire (upstream_wire.py, a plain-http upstream, the default)
and through httpx (``Upstream.wire`` None: a traced gateway, an https or proxied upstream)."""

from __future__ import annotations

import asyncio

import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_mock_upstream
from reference_gateway.upstream import UPSTREAM_POOL_SHARDS, Upstream

BODY = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 4}


def _pool_after(streams: int, *, read_to_done: bool, wire: bool, together: int = 1) -> list[bool]:
    """Open ``streams`` streams, ``together`` at a time; what is idle in the pools afterwards."""
    mock = start_mock_upstream()

    async def one(upstream: Upstream) -> None:
        # closed early: a paced answer (a token every 10 ms), so that it is not whole in the first read
        opened = await upstream.open_stream(BODY if read_to_done else {**BODY, "model": "mock-paced", "max_tokens": 32})
        try:
            async for _chunk in opened.chunks():
                if not read_to_done:
                    break
        finally:
            await opened.aclose()

    async def run() -> list[bool]:
        upstream = Upstream(GatewayConfig(upstream_url=mock.base_url))
        assert upstream.wire is not None  # a plain-http upstream on loopback
        if not wire:
            upstream.wire = None
        try:
            for _ in range(streams // together):
                await asyncio.gather(*(one(upstream) for _ in range(together)))
            if wire:
                return [True] * upstream.wire.idle_connections()
            return [c.is_idle() for client in upstream.clients for c in client._transport._pool.connections]
        finally:
            await upstream.aclose()

    try:
        return asyncio.run(run())
    finally:
        mock.close()


def test_streams_read_to_done_keep_their_connections_alive_through_httpx():
    # the pools are taken in turn (UPSTREAM_POOL_SHARDS): a second round of streams reuses the
    # first round's connections, one per pool, no more
    assert _pool_after(UPSTREAM_POOL_SHARDS * 2, read_to_done=True, wire=False) == [True] * UPSTREAM_POOL_SHARDS


@pytest.mark.parametrize("together", [1, 3])
def test_streams_read_to_done_keep_their_connections_alive_on_the_wire(together):
    # one pool: streams one after another reuse one connection; three at a time, three
    assert _pool_after(6, read_to_done=True, wire=True, together=together) == [True] * together


@pytest.mark.parametrize("wire", [False, True])
def test_a_stream_closed_before_done_drops_its_connection(wire):
    # the other side of the rule: an unfinished body is never drained (it could be endless)
    assert _pool_after(2, read_to_done=False, wire=wire) == []
