"""The SQLite store (the default): one file, shared safely by several gateway processes.

Decisions:

- WAL journal, so readers never block the writer, and a busy timeout (``BUSY_TIMEOUT_MS``) with
  ``BEGIN IMMEDIATE`` for every write, so concurrent writers from several processes queue for
  the write lock instead of failing or deadlocking.
- ``synchronous=FULL``: every commit fsyncs the WAL before it returns. A commit that has
  returned has therefore reached the disk, and the gateway acknowledges a response only after
  its commit returned: it survives ``kill -9`` of the gateway *and* a power loss or kernel
  crash. (``synchronous=NORMAL`` in WAL mode would also survive kill -9, since the WAL pages
  are in the OS's cache once ``write()`` returned, but could lose the last commits on power
  loss; one fsync per stored response is small next to a model's generation, so the gateway
  pays it.)
- Migration: files from before owners and instances get the columns with
  ``ALTER TABLE ... ADD COLUMN`` (existing rows: owner ``anonymous``, no instance), inside the
  same ``BEGIN IMMEDIATE`` as the check, so two processes starting on one old file do not race.
- Timestamps of leases use SQLite's clock (``julianday('now')``), the machine's clock: all
  processes sharing a file share a machine.
- ``:memory:`` is a private database of this process (no WAL, nothing to share or keep).
- A new file is created with mode 0600 (stored responses are private to the gateway's user);
  an existing file keeps its mode. The file must be on a local disk: WAL needs shared memory,
  which network filesystems do not give (several machines: use PostgreSQL).
"""

from __future__ import annotations

import os
import sqlite3
import time

from reference_gateway.store_contract import ANONYMOUS_OWNER, EVENTS_TABLE, ResponseStore, StoreError

# How long a writer waits for another process's lock before failing (SQLite's busy_timeout).
BUSY_TIMEOUT_MS = 5000
# How often a WAL switch that found the file busy is tried again (``_wal_mode``).
WAL_RETRY_INTERVAL_S = 0.005

TABLES = (
    """CREATE TABLE IF NOT EXISTS stored_responses (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        input_items TEXT NOT NULL,
        context TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS gateway_instances (id TEXT PRIMARY KEY, lease_expires_at REAL NOT NULL)",
    EVENTS_TABLE,
)
# Columns added since the first release of the table, in order: (name, definition).
ADDED_COLUMNS = (
    ("owner", f"TEXT NOT NULL DEFAULT '{ANONYMOUS_OWNER}'"),
    ("instance", "TEXT"),
)
INDEXES = (
    # The orphan sweep reads only pending rows; a partial index keeps that cheap on big files.
    "CREATE INDEX IF NOT EXISTS stored_responses_pending ON stored_responses (status)"
    " WHERE status IN ('queued', 'in_progress')",
)


class SQLiteStore(ResponseStore):
    # Unix seconds with millisecond precision (julianday's epoch is 4714 BC).
    NOW_SQL = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__()
        self.path = path
        # One connection shared by the server's threads, serialised by the lock; SQLite itself
        # is fast enough at this size that a pool would add code, not speed.
        try:
            if path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
                # Responses are private: a new file is readable by its owner only (its -wal and
                # -shm files take the same mode), whatever the umask says.
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_MS / 1000)
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # not a database?
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {path!r}: {exc}") from None
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if path != ":memory:":
                self._wal_mode()
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for table in TABLES:
                    self._conn.execute(table)
                have = {row[1] for row in self._conn.execute("PRAGMA table_info(stored_responses)")}
                for name, definition in ADDED_COLUMNS:
                    if name not in have:
                        self._conn.execute(f"ALTER TABLE stored_responses ADD COLUMN {name} {definition}")
                for index in INDEXES:
                    self._conn.execute(index)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _wal_mode(self) -> None:
        """``PRAGMA journal_mode=WAL``, retried while another connection holds the fresh file:
        switching a database to WAL needs it alone, and SQLite answers "database is locked" at
        once there instead of calling the busy handler (seen: 6 of 600 processes opening one
        new file together). Bounded by the busy timeout, as every other wait on the file is."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(WAL_RETRY_INTERVAL_S)

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple) -> int:
        return self._write_many([(sql, args)])[0]

    def _write_many(self, statements: list[tuple[str, tuple]]) -> list[int]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                counts = [self._conn.execute(sql, args).rowcount for sql, args in statements]
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return counts

    def close(self) -> None:
        with self._lock:
            self._conn.close()
