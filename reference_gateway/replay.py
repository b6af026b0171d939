"""``GET /v1/responses/{id}?stream=true&starting_after=N``: a stored stream's events again, as
SSE, from the one after sequence number N (all of them without ``starting_after``): what the
openai SDK's ``client.responses.retrieve(id, stream=True, starting_after=N)`` reads, and how a
client resumes a background stream it lost (OpenAI's background mode guide).

Where the events come from:

- a background stream running in this process: its feed (response_feed.py), live, to its end;
- otherwise the store (``response_events``, response_keeper.py): the events stored so far, then,
  while the response is still ``queued``/``in_progress`` (a stream running in another gateway
  process sharing the store, or a stored stream of this one), the newer ones every
  ``POLL_INTERVAL_S`` (the writer's progress interval: nothing is stored more often) until its
  terminal event.

A stored response whose terminal event is not among its events (the orphan sweep failed it
after its process died, background.py) ends its replay with a ``response.failed`` made from the
stored object, numbered after the last stored event: a replay always ends like a stream does,
except for a cancelled response, which ends where its events stopped.

Refused (envelopes, before any byte of the stream): an unknown id (404, like GET); a
``starting_after`` that is not a non-negative integer (400 ``invalid_value``); a response that
was not streamed (it has no events: 400 ``stream_not_available``, since there is nothing to
replay; GET without ``stream`` still returns it). ``stream`` other than true/false is 400.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping

from reference_gateway.errors import APIError, invalid
from reference_gateway.response_feed import Feed
from reference_gateway.store_contract import PENDING, ResponseStore
from reference_gateway.store_writer import PROGRESS_INTERVAL_S

POLL_INTERVAL_S = PROGRESS_INTERVAL_S
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
BOOLEAN = {"true": True, "false": False, "1": True, "0": False}


def wants_stream(query: Mapping[str, str]) -> tuple[bool, int]:
    """``(stream, starting_after)`` of a GET's query; ``starting_after`` is -1 when absent."""
    stream = query.get("stream", "false").lower()
    if stream not in BOOLEAN:
        raise invalid("Invalid value for 'stream': expected true or false.", param="stream")
    after = query.get("starting_after")
    if after is None or after == "":
        return BOOLEAN[stream], -1
    if not after.isdigit():
        raise invalid("Invalid value for 'starting_after': expected a non-negative integer.", param="starting_after")
    return BOOLEAN[stream], int(after)


def not_streamed(response_id: str) -> APIError:
    return APIError(400, f"Response '{response_id}' was not streamed: it has no events to replay "
                         "(GET it without 'stream').", param="stream", code="stream_not_available")


def from_feed(feed: Feed, after: int) -> AsyncIterator[dict]:
    return feed.follow(after)


async def from_store(store: ResponseStore, response_id: str, owner: str, after: int,
                     *, poll_interval_s: float = POLL_INTERVAL_S) -> AsyncIterator[dict]:
    """Stored events after ``after``; while the response is pending, newer ones as they are
    stored (module docstring)."""
    last = after
    while True:
        for event in store.events_after(response_id, owner, last):
            last = event["sequence_number"]
            yield event
            if event["type"] in TERMINAL_EVENTS:
                return
        body = store.get(response_id, owner)
        if body is None:  # deleted meanwhile
            return
        if body["status"] not in PENDING:
            newer = store.events_after(response_id, owner, last)
            if newer:  # stored with the final object, after our read
                continue
            if body["status"] == "failed":
                final = store.last_event(response_id, owner)
                if final is None or final["type"] not in TERMINAL_EVENTS:
                    seq = max(last, final["sequence_number"] if final else -1) + 1
                    yield {"type": "response.failed", "sequence_number": seq, "response": copy.deepcopy(body)}
            return
        await asyncio.sleep(poll_interval_s)
