"""One running background stream's events, for whoever listens: the client that created it,
and any ``GET /v1/responses/{id}?stream=true`` while it runs (replay.py).

The producer (the background runner's task, background.py) ``publish``es each event and
``close``s the feed when the stream ends, however it ends; each listener ``follow``s it from a
``sequence_number`` on, at its own pace, and stops at the end. A listener that goes away
changes nothing for the producer or the others: a background response runs on whoever listens
(OpenAI's semantics: it is resumed with ``starting_after``, not restarted). The events stay in
memory only while the stream runs; the store keeps them for later (response_keeper.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class Feed:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.events: list[dict] = []
        self.closed = False
        self._wake = asyncio.Event()

    def publish(self, event: dict) -> None:
        self.events.append(event)
        self._wake.set()
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def follow(self, after: int = -1) -> AsyncIterator[dict]:
        """The events with ``sequence_number > after``, as they come, until the feed closes."""
        sent = 0
        while True:
            while sent < len(self.events):
                event = self.events[sent]
                sent += 1
                if event.get("sequence_number", -1) > after:
                    yield event
            if self.closed:
                return
            await self._wake.wait()
