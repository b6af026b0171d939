"""The conversation history cache: a ``previous_response_id`` chain without re-reading the store.

Each turn of a chain needs the previous response's whole context (every earlier item), which
the store keeps as JSON; reading and parsing it on every turn costs more as the chain grows.
The cache keeps the last ``max_entries`` finished responses this process stored or read, for
``ttl_s`` each (the OpenResponses gateway's design: a TTL and a size bound).

Decisions:

- Only finished responses (completed, incomplete, failed, cancelled) are cached: they never
  change again, except by DELETE. Queued and in-progress ones are always read from the store.
- A hit is confirmed with ``store.exists`` (one indexed lookup, no JSON), so a response deleted
  by another worker or machine sharing the store is never continued from a stale entry; a DELETE
  through this process also drops the entry at once.
- Eviction (size or age) only forgets the copy: the store holds every response, so nothing
  stored is ever lost by it. ``max_entries`` 0 turns the cache off.
- Entries are read-only for callers (the gateway builds new lists from them, never edits items).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from reference_gateway.store_contract import PENDING, ResponseStore, StoredResponse

# Finished responses kept per process. A stored record is the context of a conversation; 1024
# long conversations of ~100 KB each is ~100 MB at worst, a bound a gateway process can carry.
DEFAULT_MAX_ENTRIES = 1024
# How long an entry is used: agents continue a chain within seconds to minutes.
DEFAULT_TTL_S = 300.0


class HistoryCache:
    def __init__(self, store: ResponseStore, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 ttl_s: float = DEFAULT_TTL_S) -> None:
        self.store = store
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[tuple[str, str], tuple[float, StoredResponse]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, record: StoredResponse, owner: str) -> None:
        if self.max_entries <= 0 or record.body.get("status") in PENDING:
            return
        key = (owner, record.body["id"])
        self._entries[key] = (time.monotonic() + self.ttl_s, record)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def record(self, response_id: str, owner: str) -> StoredResponse | None:
        key = (owner, response_id)
        entry = self._entries.get(key)
        if entry is not None:
            expires, record = entry
            if time.monotonic() < expires and self.store.exists(response_id, owner):
                self._entries.move_to_end(key)
                self.hits += 1
                return record
            del self._entries[key]
        self.misses += 1
        record = self.store.record(response_id, owner)
        if record is not None:
            self.remember(record, owner)
        return record

    def forget(self, response_id: str, owner: str) -> None:
        self._entries.pop((owner, response_id), None)
