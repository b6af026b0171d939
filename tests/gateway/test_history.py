"""The conversation history cache (reference_gateway/history.py) over a real SQLite store."""

from __future__ import annotations

import time

import pytest

from reference_gateway.history import HistoryCache
from reference_gateway.store import open_store
from reference_gateway.store_contract import StoredResponse

OWNER = "anonymous"


class CountingStore:
    """The real store, counting the full reads the cache exists to save."""

    def __init__(self, store) -> None:
        self.store, self.reads = store, 0

    def record(self, response_id, owner):
        self.reads += 1
        return self.store.record(response_id, owner)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path):
    real = open_store(str(tmp_path / "history.sqlite3"))
    yield CountingStore(real)
    real.close()


def stored(store, n: int, status: str = "completed") -> StoredResponse:
    body = {"id": f"resp_{n}", "status": status, "output": [{"type": "message", "n": n}]}
    record = StoredResponse(body, [{"type": "message", "role": "user", "n": n}], [{"n": i} for i in range(n)])
    store.put(body, owner=OWNER, input_items=record.input_items, context=record.context)
    return record


def test_a_chain_reads_the_store_once_per_response_at_most(store):
    cache = HistoryCache(store)
    for n in range(5):
        cache.remember(stored(store, n), OWNER)
    for _ in range(3):
        for n in range(5):
            assert cache.record(f"resp_{n}", OWNER).body["output"][0]["n"] == n
    assert store.reads == 0 and cache.hits == 15


def test_a_deleted_response_is_never_served_from_the_cache(store):
    cache = HistoryCache(store)
    cache.remember(stored(store, 1), OWNER)
    store.store.delete("resp_1", OWNER)  # as another worker sharing the store would
    assert cache.record("resp_1", OWNER) is None and len(cache) == 0


def test_eviction_forgets_the_copy_never_the_response(store):
    cache = HistoryCache(store, max_entries=2)
    for n in range(4):
        cache.remember(stored(store, n), OWNER)
    assert len(cache) == 2
    assert cache.record("resp_0", OWNER).context == []  # evicted: read back from the store
    assert store.reads == 1


def test_entries_expire(store):
    cache = HistoryCache(store, ttl_s=0.05)
    cache.remember(stored(store, 3), OWNER)
    time.sleep(0.1)
    assert cache.record("resp_3", OWNER).body["id"] == "resp_3" and store.reads == 1


def test_pending_responses_are_not_cached_and_owners_are_apart(store):
    cache = HistoryCache(store)
    cache.remember(stored(store, 7, status="in_progress"), OWNER)
    assert len(cache) == 0
    cache.remember(stored(store, 8), OWNER)
    assert cache.record("resp_8", "sha256:someone-else") is None


def test_size_zero_turns_it_off(store):
    cache = HistoryCache(store, max_entries=0)
    cache.remember(stored(store, 1), OWNER)
    assert len(cache) == 0 and cache.record("resp_1", OWNER) is not None


def test_the_gateway_continues_from_the_cache_and_refuses_a_deleted_one(client):
    first = client.post("/responses", json={"model": "mock-1", "input": "one"}).json()
    second = client.post("/responses", json={"model": "mock-1", "input": "two", "previous_response_id": first["id"]})
    assert second.status_code == 200
    assert client.delete(f"/responses/{first['id']}").status_code == 200
    third = client.post("/responses", json={"model": "mock-1", "input": "x", "previous_response_id": first["id"]})
    assert third.status_code == 400 and third.json()["error"]["code"] == "previous_response_not_found"
