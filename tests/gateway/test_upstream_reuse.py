"""A streamed upstream request gives its connection back to the pool: after ``data: [DONE]``
the rest of the body is read before the response is closed (upstream.py, ``UpstreamStream.aclose``).
Closed unread, httpcore drops the connection and every stream pays a new one (issue 20)."""

from __future__ import annotations

import asyncio

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_mock_upstream
from reference_gateway.upstream import UPSTREAM_POOL_SHARDS, Upstream

BODY = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 4}


def _pool_after(streams: int, *, read_to_done: bool) -> list[bool]:
    mock = start_mock_upstream()

    async def run() -> list[bool]:
        upstream = Upstream(GatewayConfig(upstream_url=mock.base_url))
        try:
            for _ in range(streams):
                opened = await upstream.open_stream(BODY)
                try:
                    async for _chunk in opened.chunks():
                        if not read_to_done:
                            break
                finally:
                    await opened.aclose()
            return [c.is_idle() for client in upstream.clients for c in client._transport._pool.connections]
        finally:
            await upstream.aclose()

    try:
        return asyncio.run(run())
    finally:
        mock.close()


def test_streams_read_to_done_keep_their_connections_alive():
    # the pools are taken in turn (UPSTREAM_POOL_SHARDS): a second round of streams reuses the
    # first round's connections, one per pool, no more
    assert _pool_after(UPSTREAM_POOL_SHARDS * 2, read_to_done=True) == [True] * UPSTREAM_POOL_SHARDS


def test_a_stream_closed_before_done_drops_its_connection():
    # the other side of the rule: an unfinished body is never drained (it could be endless)
    assert _pool_after(2, read_to_done=False) == []
