"""Stored responses: the interface both backends share (``ResponseStore``, ``StoredResponse``,
``StoreError``, owners). The backends (store_sqlite.py, store_postgres.py) import this module;
``open_store`` (store.py) imports them: the types and the factory live apart so that neither
import goes back the other way.

A row holds the Response object exactly as it was sent (``body``, JSON text, so GET answers the
same bytes' worth of keys in the same order), the normalized input items of its request
(``input_items``, what ``GET /v1/responses/{id}/input_items`` lists) and its conversation
(``context``: the previous response's context + its output + this input, as items), so that
``previous_response_id`` rebuilds a chain from one row, even when an earlier response of the
chain has been deleted since.

Owners. Every row belongs to an ``owner``: the tenant of the API key that created it (auth.py: a
hash of the key, never the key) or ``ANONYMOUS_OWNER`` when the gateway has no keys. Every read,
delete and update takes the owner and matches ``id`` *and* ``owner``: another tenant's response
is exactly as absent as an unknown id. Rows from before owners existed are migrated to the
anonymous owner (``ADD COLUMN ... DEFAULT``), so an upgraded open gateway still sees them and a
gateway that starts requiring keys does not hand them to any key.

Durability. A write returns only once its transaction is committed, and the gateway tells the
client of a response only after the write that stored it returned (response_keeper.py: a stored
stream's in_progress row before its ``response.created``, its final object before its terminal
event; through store_writer.py's thread, several responses per transaction), so "acknowledged"
means "committed". What committed means per backend is in store_sqlite.py
(``synchronous=FULL``: survives kill -9 and power loss) and store_postgres.py (the server's
``synchronous_commit``, on by default).

Events. A stored stream's events are kept in ``response_events`` (``response_id``, ``owner``,
``seq`` = the event's ``sequence_number``, ``event``: its JSON as sent), written with the live
output by the writer (``event_statements``) and read back by ``events_after`` for
``GET /v1/responses/{id}?stream=true&starting_after=N`` (replay.py). Deleting a response
deletes its events.

Orphans. A background response, or a stored stream, is ``queued``/``in_progress`` while a
gateway process works on it; if that process dies (kill -9, a crashed machine) nobody would ever finish it. So each store
is one *instance* (``instance_id``) that holds a lease in ``gateway_instances``, renewed by
``heartbeat(lease_s)``; every row records the instance that wrote it; ``orphans()`` lists the
pending rows whose instance holds no unexpired lease (or none at all: rows from before this
scheme), and ``settle_orphan`` replaces one, re-checking both conditions in the same statement.
Lease times come from the database's clock (one clock for every machine sharing a Postgres
server), and each instance declares its own lease length, so processes with different settings
can share a store. background.py runs the heartbeat and turns orphans into ``failed``.
"""

from __future__ import annotations

import abc
import json
import threading
from dataclasses import dataclass

from reference_gateway.ids import new_id

PENDING = ("queued", "in_progress")
# The owner of every response when the gateway asks for no API key, and of rows stored before
# owners existed. Tenants of keys are "sha256:<hex>" (auth.py), so they never collide with it.
ANONYMOUS_OWNER = "anonymous"

_PENDING_SQL = "status IN ('queued', 'in_progress')"
# Rows per INSERT of events: 4 values each, far below SQLite's 32766 bound variables.
EVENTS_PER_STATEMENT = 500
# The events table, the same in both backends (``seq`` fits any stream: an int64).
EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS response_events (
        response_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (response_id, seq)
    )"""

# One SQL statement (``?`` placeholders) and its arguments.
Statement = tuple[str, tuple]


class StoreError(RuntimeError):
    """The store cannot be opened (one line: what and why); the gateway does not start."""


def _dump(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class StoredResponse:
    body: dict
    input_items: list[dict]
    context: list[dict]


class ResponseStore(abc.ABC):
    """One set of SQL for both backends, written with ``?`` placeholders and ``{now}`` (the
    database clock in Unix seconds); a backend supplies the connection, the dialect and the
    schema. All calls are synchronous, one short statement (one transaction) each (``write_many``:
    several in one), serialised by a lock per store. The gateway's response writes go through
    store_writer.py's thread; reads, the heartbeat and the sweep are called from its event loop."""

    # SQL expression for the database's current time in Unix seconds (a float).
    NOW_SQL: str

    def __init__(self) -> None:
        self.instance_id = new_id("gw")
        self._lock = threading.Lock()

    # -- the backend ------------------------------------------------------------------------
    @abc.abstractmethod
    def _query(self, sql: str, args: tuple) -> list[tuple]:
        """Rows of one read statement."""

    @abc.abstractmethod
    def _write(self, sql: str, args: tuple) -> int:
        """Run one write statement in its own committed transaction; the affected row count."""

    @abc.abstractmethod
    def _write_many(self, statements: list[Statement]) -> list[int]:
        """Run write statements in one committed transaction; the affected row count of each."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def _sql(self, sql: str) -> str:
        return sql.replace("{now}", self.NOW_SQL)

    # -- responses --------------------------------------------------------------------------
    def put(self, response: dict, *, owner: str, input_items: list[dict], context: list[dict]) -> None:
        """Insert a new response (ids are random: an existing id is a bug, and raises)."""
        self._write(*self.put_statement(response, owner=owner, input_items=input_items, context=context))

    def update_pending(self, response: dict, *, owner: str) -> bool:
        """Replace the body only while the stored response is still queued or in progress."""
        return self._write(*self.update_pending_statement(response, owner=owner)) > 0

    def put_statement(self, response: dict, *, owner: str, input_items: list[dict],
                      context: list[dict]) -> Statement:
        """``put`` as a statement, for ``write_many`` (the JSON is dumped now, by the caller)."""
        return ("INSERT INTO stored_responses (id, status, body, input_items, context, owner, instance)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (response["id"], response["status"], _dump(response), _dump(input_items), _dump(context),
                 owner, self.instance_id))

    def update_pending_statement(self, response: dict, *, owner: str) -> Statement:
        """``update_pending`` as a statement, for ``write_many``."""
        return (f"UPDATE stored_responses SET status = ?, body = ? WHERE id = ? AND owner = ? AND {_PENDING_SQL}",
                (response["status"], _dump(response), response["id"], owner))

    def write_many(self, statements: list[Statement]) -> list[int]:
        """Run ``statements`` in one committed transaction (one fsync for all of them); the
        affected row count of each. If one fails, none is applied and it raises (store_writer.py
        then runs them one by one, to fail only the one that failed)."""
        return self._write_many(statements)

    def get(self, response_id: str, owner: str) -> dict | None:
        rows = self._query("SELECT body FROM stored_responses WHERE id = ? AND owner = ?", (response_id, owner))
        return json.loads(rows[0][0]) if rows else None

    def record(self, response_id: str, owner: str) -> StoredResponse | None:
        rows = self._query(
            "SELECT body, input_items, context FROM stored_responses WHERE id = ? AND owner = ?",
            (response_id, owner),
        )
        return StoredResponse(*(json.loads(column) for column in rows[0])) if rows else None

    def find_item(self, item_id: str, owner: str) -> dict | None:
        """The item with id ``item_id`` among the output items and stored input items of
        ``owner``'s responses (item_reference.py), or None. Several: the most recently created
        response's, its output before its input. The rows are narrowed in SQL by the item's
        ``"id":"..."`` as it is written in the JSON text (``_dump``), then the parsed items are
        matched exactly: a scan of the owner's rows, no index of items (the reference gateway's
        store is not sized for millions of responses per tenant)."""
        needle = _dump({"id": item_id})[1:-1]
        pattern = "%" + needle.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        rows = self._query("SELECT body, input_items FROM stored_responses WHERE owner = ?"
                           " AND (body LIKE ? ESCAPE '!' OR input_items LIKE ? ESCAPE '!')",
                           (owner, pattern, pattern))
        best: tuple[float, dict] | None = None
        for body_text, input_text in rows:
            body = json.loads(body_text)
            candidates = list(body.get("output") or []) + json.loads(input_text)
            item = next((i for i in candidates if isinstance(i, dict) and i.get("id") == item_id), None)
            created = body.get("created_at") or 0
            if item is not None and (best is None or created > best[0]):
                best = (created, item)
        return best[1] if best is not None else None

    def exists(self, response_id: str, owner: str) -> bool:
        """One indexed row lookup, no JSON: the history cache's check that a cached response
        was not deleted meanwhile (by this process or another sharing the store)."""
        return bool(self._query("SELECT 1 FROM stored_responses WHERE id = ? AND owner = ?", (response_id, owner)))

    def delete(self, response_id: str, owner: str) -> bool:
        counts = self._write_many([
            ("DELETE FROM stored_responses WHERE id = ? AND owner = ?", (response_id, owner)),
            ("DELETE FROM response_events WHERE response_id = ? AND owner = ?", (response_id, owner))])
        return counts[0] > 0

    # -- events -------------------------------------------------------------------------------
    def event_statements(self, response_id: str, owner: str, events: list[tuple[int, str]], *,
                         while_pending: bool = True) -> list[Statement]:
        """Inserts of ``events`` ((sequence_number, JSON text) each) of one response, at most
        ``EVENTS_PER_STATEMENT`` rows a statement; an event already stored is left as it is.
        ``while_pending``: only while the response is still queued or in progress, like
        ``update_pending`` (a response cancelled, deleted or failed by the sweep meanwhile keeps
        its one outcome, and no event of another comes after it)."""
        statements = []
        for start in range(0, len(events), EVENTS_PER_STATEMENT):
            rows = events[start:start + EVENTS_PER_STATEMENT]
            args: list = []
            for seq, text in rows:
                args += [response_id, owner, seq, text]
            values = ", ".join(["(?, ?, ?, ?)"] * len(rows))
            # VALUES names its columns column1..column4 in SQLite and PostgreSQL alike; the WHERE
            # also keeps SQLite's parser from reading ON CONFLICT as a join's (its upsert docs).
            condition = (f"EXISTS (SELECT 1 FROM stored_responses WHERE id = ? AND owner = ? AND {_PENDING_SQL})"
                         if while_pending else "1 = 1")
            if while_pending:
                args += [response_id, owner]
            sql = ("INSERT INTO response_events (response_id, owner, seq, event)"
                   f" SELECT column1, column2, column3, column4 FROM (VALUES {values}) AS v WHERE {condition}"
                   " ON CONFLICT (response_id, seq) DO NOTHING")
            statements.append((sql, tuple(args)))
        return statements

    def events_after(self, response_id: str, owner: str, after: int, *, limit: int = 10_000) -> list[dict]:
        """The stored events of a response with ``sequence_number > after``, in order."""
        rows = self._query("SELECT event FROM response_events WHERE response_id = ? AND owner = ? AND seq > ?"
                           " ORDER BY seq LIMIT ?", (response_id, owner, after, limit))
        return [json.loads(text) for (text,) in rows]

    def last_event(self, response_id: str, owner: str) -> dict | None:
        rows = self._query("SELECT event FROM response_events WHERE response_id = ? AND owner = ?"
                           " ORDER BY seq DESC LIMIT 1", (response_id, owner))
        return json.loads(rows[0][0]) if rows else None

    def has_events(self, response_id: str, owner: str) -> bool:
        return bool(self._query("SELECT 1 FROM response_events WHERE response_id = ? AND owner = ? LIMIT 1",
                                (response_id, owner)))

    # -- instances and orphans ----------------------------------------------------------------
    def heartbeat(self, lease_s: float) -> None:
        """Hold (or renew) this instance's lease for ``lease_s`` seconds from now."""
        self._write(
            self._sql("INSERT INTO gateway_instances (id, lease_expires_at) VALUES (?, {now} + ?)"
                      " ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at"),
            (self.instance_id, float(lease_s)),
        )

    _ORPHANED = (
        f"{_PENDING_SQL} AND (instance IS NULL OR instance NOT IN"
        " (SELECT id FROM gateway_instances WHERE lease_expires_at > {now}))"
    )

    def orphans(self) -> list[tuple[dict, str]]:
        """(body, owner) of every pending response whose instance holds no live lease."""
        rows = self._query(self._sql(f"SELECT body, owner FROM stored_responses WHERE {self._ORPHANED}"), ())
        return [(json.loads(body), owner) for body, owner in rows]

    def settle_orphan(self, response: dict) -> bool:
        """Store ``response`` over an orphan, if it is still pending and still an orphan."""
        return self._write(
            self._sql(f"UPDATE stored_responses SET status = ?, body = ? WHERE id = ? AND {self._ORPHANED}"),
            (response["status"], _dump(response), response["id"]),
        ) > 0

    def release(self) -> None:
        """Give up this instance's lease (a clean shutdown, after settling its own work)."""
        self._write("DELETE FROM gateway_instances WHERE id = ?", (self.instance_id,))

    def forget_expired(self) -> None:
        """Drop expired leases: an instance with no row is as dead as one with an old row."""
        self._write(self._sql("DELETE FROM gateway_instances WHERE lease_expires_at < {now}"), ())
