"""The PostgreSQL store: ``--store postgresql://user:pass@host:5432/db``, for gateways on several
machines sharing one store. Same tables, same SQL and same guarantees as the SQLite store
(store.py), through psycopg 3.

Decisions:

- One autocommit connection per gateway process, serialised by a lock: every write is one
  statement, hence one transaction, committed when the call returns. With PostgreSQL's default
  ``synchronous_commit = on`` a committed transaction is on the server's disk (and on a
  synchronous standby where one is configured): acknowledged responses survive a crash of the
  gateway and of the database server. (Turning ``synchronous_commit`` off on the server trades
  that for speed; that is the operator's call, not the gateway's.)
- A connection that broke (server restart, network cut) is replaced on the next call. A read
  that saw it break is retried once on the new connection; a write that saw it break fails (a
  500 envelope) and is not retried blindly: an INSERT or UPDATE whose commit reply was lost may
  have happened.
- ``connect_timeout`` is ``CONNECT_TIMEOUT_S`` unless the URL sets one: an unreachable server
  fails startup with a clear message instead of hanging.
- Schema creation and migration (``ADD COLUMN IF NOT EXISTS``) run in one transaction under a
  transaction-scoped advisory lock, so several gateways starting at once do not race on
  ``CREATE TABLE``. ``body`` is ``TEXT``, not ``JSONB``: JSONB reorders keys and GET must return
  the object as it was sent.
- Lease times use the server's clock (``clock_timestamp()``): one clock for all machines.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reference_gateway.store_contract import ANONYMOUS_OWNER, EVENTS_TABLE, ResponseStore, StoreError

CONNECT_TIMEOUT_S = 10
# pg_advisory_xact_lock key for schema setup: any constant unique to this application.
SCHEMA_LOCK_KEY = 0x5245_5350_4757  # "RESPGW"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stored_responses (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        input_items TEXT NOT NULL,
        context TEXT NOT NULL
    )""",
    f"ALTER TABLE stored_responses ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '{ANONYMOUS_OWNER}'",
    "ALTER TABLE stored_responses ADD COLUMN IF NOT EXISTS instance TEXT",
    "CREATE INDEX IF NOT EXISTS stored_responses_pending ON stored_responses (status)"
    " WHERE status IN ('queued', 'in_progress')",
    "CREATE TABLE IF NOT EXISTS gateway_instances (id TEXT PRIMARY KEY, lease_expires_at DOUBLE PRECISION NOT NULL)",
    EVENTS_TABLE,
)


class PostgresStore(ResponseStore):
    NOW_SQL = "CAST(extract(epoch FROM clock_timestamp()) AS DOUBLE PRECISION)"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        try:
            given = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"invalid PostgreSQL URL: {exc}") from None
        self._connect_args = {} if "connect_timeout" in given else {"connect_timeout": CONNECT_TIMEOUT_S}
        where = f"{given.get('host', 'localhost')}:{given.get('port', 5432)}/{given.get('dbname', '')}"
        try:
            self._conn = self._connect()
        except psycopg.OperationalError as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise StoreError(f"cannot connect to the PostgreSQL store at {where}: {reason}") from None
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            for statement in SCHEMA:
                self._conn.execute(statement)

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self._url, autocommit=True, **self._connect_args)

    def _live(self) -> psycopg.Connection:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._live().execute(sql.replace("?", "%s"), args).fetchall()
            except psycopg.OperationalError:
                if not self._conn.broken:
                    raise
            # A read changes nothing: on a connection that broke under it, it is safe to retry once.
            return self._live().execute(sql.replace("?", "%s"), args).fetchall()

    def _write(self, sql: str, args: tuple) -> int:
        with self._lock:
            return self._live().execute(sql.replace("?", "%s"), args).rowcount

    def _write_many(self, statements: list[tuple[str, tuple]]) -> list[int]:
        with self._lock:
            conn = self._live()
            with conn.transaction():
                return [conn.execute(sql.replace("?", "%s"), args).rowcount for sql, args in statements]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
