"""The store contract, run against SQLite and a real PostgreSQL server; the gateway on Postgres.

The PostgreSQL server is Debian's (``apt-get install postgresql``: binaries under
/usr/lib/postgresql/*/bin), started here for the session: ``initdb`` into a temporary directory,
listening on 127.0.0.1 on a free port, ``fsync=off`` (speed; durability is the server's job and
not under test here), stopped with ``pg_ctl stop -m immediate`` at the end. As root it runs as
the ``postgres`` OS user (the server refuses root). Each test gets a database of its own.
Where the binaries are absent the Postgres cases are skipped with the reason, except under CI
(``CI=true``), where they fail: CI must run them (.ci/run installs the package).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import httpx
import psycopg
import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_gateway
from reference_gateway.store import open_store
from reference_gateway.store_contract import ANONYMOUS_OWNER, StoreError

OWNER, OTHER = "sha256:" + "a" * 64, "sha256:" + "b" * 64
KEY_A, KEY_B = "sk-pg-test-alice-0123456789abcdef", "sk-pg-test-bob-0123456789abcdef"

OLD_SCHEMA = ("CREATE TABLE stored_responses (id TEXT PRIMARY KEY, status TEXT NOT NULL, body TEXT NOT NULL,"
              " input_items TEXT NOT NULL, context TEXT NOT NULL)")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    """A fresh, empty store location of each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def stores(location):
    """``stores()`` opens another store on the same location; all closed afterwards."""
    opened = []

    def make():
        opened.append(open_store(location))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def response(status: str = "completed", **extra) -> dict:
    # Keys deliberately out of alphabetical order: the store must keep the order it was given.
    return {"id": f"resp_{os.urandom(24).hex()}", "object": "response", "status": status, "output": [],
            "model": "m", "background": status != "completed", "error": None, **extra}


def put(store, body: dict, owner: str = OWNER) -> dict:
    store.put(body, owner=owner, input_items=[{"type": "message", "id": "msg_1"}],
              context=[{"type": "message", "id": "msg_1"}])
    return body


# -- the contract, on both backends ----------------------------------------------------------
def test_round_trip_keeps_the_object_and_its_key_order(stores):
    store = stores()
    body = put(store, response(zeta=1, alpha={"é": "ü", "n": [1, 2.5, None]}))
    got = store.get(body["id"], OWNER)
    assert got == body and list(got) == list(body)
    record = store.record(body["id"], OWNER)
    assert record.body == body and record.input_items == [{"type": "message", "id": "msg_1"}]
    assert record.context == [{"type": "message", "id": "msg_1"}]
    assert stores().get(body["id"], OWNER) == body  # another connection (process) sees it


def test_every_operation_is_scoped_to_the_owner(stores):
    store = stores()
    body = put(store, response("queued"))
    assert store.get(body["id"], OTHER) is None and store.record(body["id"], OTHER) is None
    assert store.delete(body["id"], OTHER) is False
    assert store.update_pending({**body, "status": "cancelled"}, owner=OTHER) is False
    assert store.get(body["id"], OWNER) == body
    assert store.update_pending({**body, "status": "cancelled"}, owner=OWNER) is True
    assert store.delete(body["id"], OWNER) is True and store.get(body["id"], OWNER) is None
    assert store.delete(body["id"], OWNER) is False


def test_find_item_matches_exactly_per_owner_and_prefers_the_newest(stores):
    """item_reference.py's lookup: output and input items, the owner's only, LIKE wildcards in an
    id taken literally, the most recently created response's item when several share an id."""
    store = stores()
    old = {"id": "msg_a", "type": "message", "role": "user", "content": "old"}
    new = {"id": "msg_a", "type": "message", "role": "assistant", "content": "new"}
    store.put(response(created_at=100), owner=OWNER, input_items=[old], context=[])
    store.put(response(created_at=200, output=[new]), owner=OWNER, input_items=[], context=[])
    foreign = response(created_at=300, output=[{"id": "msg_aX"}, {"id": "msg%a!"}])
    store.put(foreign, owner=OTHER, input_items=[], context=[{"id": "ctx_only"}])
    assert store.find_item("msg_a", OWNER) == new
    assert store.find_item("msg%a!", OWNER) is None and store.find_item("msg%a!", OTHER) == {"id": "msg%a!"}
    assert store.find_item("msg_", OWNER) is None and store.find_item("msg_a", OTHER) is None
    assert store.find_item(foreign["id"], OTHER) is None  # a response id is not an item id
    assert store.find_item("ctx_only", OTHER) is None  # context is not searched


def test_an_existing_id_is_never_overwritten(stores):
    store = stores()
    body = put(store, response())
    with pytest.raises(Exception):
        put(store, {**body, "status": "failed"}, owner=OTHER)
    assert store.get(body["id"], OWNER) == body and store.get(body["id"], OTHER) is None


def test_update_pending_only_moves_pending_rows(stores):
    store = stores()
    body = put(store, response("queued"))
    assert store.update_pending({**body, "status": "in_progress"}, owner=OWNER)
    assert store.update_pending({**body, "status": "completed"}, owner=OWNER)
    assert not store.update_pending({**body, "status": "cancelled"}, owner=OWNER)
    assert store.get(body["id"], OWNER)["status"] == "completed"


def events_of(n: int, start: int = 0) -> list[tuple[int, str]]:
    return [(seq, json.dumps({"type": "response.output_text.delta", "sequence_number": seq, "delta": f"w{seq}"}))
            for seq in range(start, start + n)]


def test_events_are_kept_in_order_per_owner_and_deleted_with_their_response(stores):
    store = stores()
    body = put(store, response("in_progress"))
    store.write_many(store.event_statements(body["id"], OWNER, events_of(3, start=2) + events_of(2)))
    store.write_many(store.event_statements(body["id"], OWNER, events_of(1, start=4)))  # again: kept once
    assert [e["sequence_number"] for e in store.events_after(body["id"], OWNER, -1)] == [0, 1, 2, 3, 4]
    assert [e["delta"] for e in store.events_after(body["id"], OWNER, 2)] == ["w3", "w4"]
    assert store.last_event(body["id"], OWNER)["sequence_number"] == 4
    assert store.has_events(body["id"], OWNER) and not store.has_events(body["id"], OTHER)
    assert store.events_after(body["id"], OTHER, -1) == [] and store.last_event(body["id"], OTHER) is None
    assert stores().events_after(body["id"], OWNER, 3)[0]["delta"] == "w4"  # another connection
    assert store.delete(body["id"], OWNER)
    assert store.events_after(body["id"], OWNER, -1) == [] and not store.has_events(body["id"], OWNER)


def test_events_are_written_only_while_their_response_is_pending(stores):
    """A cancelled (or swept) response gets no more events; after the final write they go in as they come."""
    store = stores()
    body = put(store, response("in_progress"))
    assert store.update_pending({**body, "status": "cancelled"}, owner=OWNER)
    store.write_many(store.event_statements(body["id"], OWNER, events_of(2)))
    assert store.events_after(body["id"], OWNER, -1) == []
    store.write_many(store.event_statements(body["id"], OWNER, events_of(2), while_pending=False))
    assert len(store.events_after(body["id"], OWNER, -1)) == 2


def test_many_events_in_one_batch(stores):
    store = stores()
    body = put(store, response("in_progress"))
    statements = store.event_statements(body["id"], OWNER, events_of(1201))
    assert len(statements) == 3  # EVENTS_PER_STATEMENT rows each
    store.write_many(statements)
    assert len(store.events_after(body["id"], OWNER, -1)) == 1201


def test_orphans_are_the_pending_rows_of_instances_without_a_live_lease(stores):
    mine, other = stores(), stores()
    mine.heartbeat(60)
    other.heartbeat(60)
    pending = put(mine, response("in_progress"))
    done = put(mine, response("completed"))
    assert other.orphans() == [] and mine.orphans() == []
    mine.heartbeat(0.05)  # mine stops renewing: its lease runs out
    time.sleep(0.3)
    assert other.orphans() == [(pending, OWNER)]
    failed = {**pending, "status": "failed", "error": {"code": "server_error", "message": "gone"}}
    assert other.settle_orphan(failed) is True
    assert other.settle_orphan(failed) is False  # settled once
    assert other.get(pending["id"], OWNER) == failed and other.get(done["id"], OWNER) == done
    assert other.orphans() == []


def test_a_renewed_lease_protects_pending_rows_and_release_gives_them_up(stores):
    mine, other = stores(), stores()
    mine.heartbeat(60)
    pending = put(mine, response("queued"))
    assert other.settle_orphan({**pending, "status": "failed"}) is False  # live: refused
    mine.release()
    assert other.orphans() == [(pending, OWNER)]
    other.heartbeat(0.01)
    time.sleep(0.1)
    other.forget_expired()
    assert other.orphans() == [(pending, OWNER)]  # an instance with no row is as dead


def test_concurrent_opens_of_a_fresh_store(location):
    """Several processes starting at once on an empty store: schema setup must not race."""
    results, errors = [], []

    def open_one():
        try:
            results.append(open_store(location))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(results) == 4
    body = put(results[0], response())
    assert all(s.get(body["id"], OWNER) == body for s in results)
    for s in results:
        s.close()


def test_a_store_from_before_owners_is_migrated(location):
    """Rows of the first schema: readable by the anonymous owner only, pending ones are orphans."""
    done, pending = response(), response("in_progress")
    rows = [(b["id"], b["status"], json.dumps(b), "[]", "[]") for b in (done, pending)]
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(OLD_SCHEMA)
            for row in rows:
                conn.execute("INSERT INTO stored_responses VALUES (%s, %s, %s, %s, %s)", row)
    else:
        with sqlite3.connect(location) as conn:
            conn.execute(OLD_SCHEMA)
            conn.executemany("INSERT INTO stored_responses VALUES (?, ?, ?, ?, ?)", rows)
        conn.close()
    store = open_store(location)
    try:
        assert store.get(done["id"], ANONYMOUS_OWNER) == done and store.get(done["id"], OWNER) is None
        assert store.orphans() == [(pending, ANONYMOUS_OWNER)]
        new = put(store, response())
        assert store.get(new["id"], OWNER) == new
    finally:
        store.close()
    open_store(location).close()  # a second open of the migrated store changes nothing


# -- Postgres only -----------------------------------------------------------------------------
def test_unreachable_postgres_is_one_clear_line(closed_port):
    port = closed_port
    with pytest.raises(StoreError) as info:
        open_store(f"postgresql://someone:hunter2@127.0.0.1:{port}/db?connect_timeout=3")
    message = str(info.value)
    assert f"127.0.0.1:{port}/db" in message and "hunter2" not in message and "\n" not in message


def test_gateway_on_postgres_end_to_end(postgres, target):
    """Store, GET, continue, delete and tenant isolation through two gateways sharing one database."""
    url = postgres.new_database()
    config = GatewayConfig(upstream_url=target.upstream.base_url, store=url, api_keys=(KEY_A, KEY_B))
    a_key, b_key = {"authorization": f"Bearer {KEY_A}"}, {"authorization": f"Bearer {KEY_B}"}
    with (start_gateway(config) as one, start_gateway(config) as two,
          httpx.Client(base_url=one.base_url, timeout=10) as c1, httpx.Client(base_url=two.base_url, timeout=10) as c2):
        created = c1.post("/responses", json={"model": "mock-1", "input": "hi"}, headers=a_key).json()
        assert created["status"] == "completed"
        assert c2.get(f"/responses/{created['id']}", headers=a_key).json() == created
        assert c2.get(f"/responses/{created['id']}", headers=b_key).status_code == 404
        with c2.stream("POST", "/responses", headers=a_key, json={
                "model": "mock-1", "input": "more", "previous_response_id": created["id"], "stream": True}) as r:
            assert r.status_code == 200
            lines = [line for line in r.iter_lines() if '"type":"response.completed"' in line]
        final = json.loads(lines[0].removeprefix("data: "))["response"]
        assert final["previous_response_id"] == created["id"]
        assert c1.get(f"/responses/{final['id']}", headers=a_key).json() == final
        items = c1.get(f"/responses/{final['id']}/input_items", headers=a_key).json()["data"]
        assert [i["content"][0]["text"] for i in items] == ["more"]
        r = c1.post("/responses", headers=b_key,
                    json={"model": "mock-1", "input": "x", "previous_response_id": created["id"]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "previous_response_not_found"
        assert c1.delete(f"/responses/{created['id']}", headers=b_key).status_code == 404
        assert c1.delete(f"/responses/{created['id']}", headers=a_key).status_code == 200
        assert c2.get(f"/responses/{created['id']}", headers=a_key).status_code == 404
        queued = c2.post("/responses", headers=a_key,
                         json={"model": "mock-1", "input": "bg", "background": True}).json()
        deadline = time.monotonic() + 10
        while (body := c1.get(f"/responses/{queued['id']}", headers=a_key).json())["status"] in (
                "queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert body["status"] == "completed"
    with psycopg.connect(url) as conn:
        owners = {row[0] for row in conn.execute("SELECT DISTINCT owner FROM stored_responses")}
    assert len(owners) == 1 and KEY_A not in next(iter(owners))


def test_postgres_store_recovers_from_a_lost_connection(postgres):
    """The server drops the gateway's connection: reads retry once, a write fails once, then all is well."""
    url = postgres.new_database()
    store = open_store(url)
    try:
        body = put(store, response())

        def terminate() -> None:
            with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
                killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                                       (url.rsplit("/", 1)[1],)).fetchall()
            assert killed == [(True,)]

        terminate()
        assert store.get(body["id"], OWNER) == body  # a read: retried on a new connection
        terminate()
        with pytest.raises(psycopg.OperationalError):
            put(store, response())
        assert put(store, second := response()) and store.get(second["id"], OWNER) == second
    finally:
        store.close()
