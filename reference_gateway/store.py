"""SQLite store of responses: one row per response id, one transaction per write.

A row holds the Response object exactly as it was sent (``body``), the normalized input items of
its request (``input_items``, what ``GET /v1/responses/{id}/input_items`` lists) and its
conversation (``context``: the previous response's context + its output + this input, as
items), so that ``previous_response_id`` rebuilds a chain from one row, even when an earlier
response of the chain has been deleted since.

Several processes may share one file: WAL journal, a busy timeout, ``BEGIN IMMEDIATE`` for every
write. Background responses move from ``queued``/``in_progress`` to a terminal status only
through ``update_pending``, a conditional update, so a cancel and a finishing generation cannot
overwrite each other (whichever commits first wins).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass

# How long a writer waits for another process's lock before failing (SQLite's busy_timeout).
BUSY_TIMEOUT_MS = 5000
PENDING = ("queued", "in_progress")

SCHEMA = """
CREATE TABLE IF NOT EXISTS stored_responses (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    input_items TEXT NOT NULL,
    context TEXT NOT NULL
)
"""


def _dump(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class StoredResponse:
    body: dict
    input_items: list[dict]
    context: list[dict]


class ResponseStore:
    def __init__(self, path: str = ":memory:") -> None:
        # One connection shared by the server's threads, serialised by a lock; SQLite itself
        # is fast enough at this size that a pool would add code, not speed.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(SCHEMA)

    def _write(self, sql: str, args: tuple) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rowcount = self._conn.execute(sql, args).rowcount
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return rowcount

    def put(self, response: dict, *, input_items: list[dict], context: list[dict]) -> None:
        self._write(
            "INSERT OR REPLACE INTO stored_responses (id, status, body, input_items, context) VALUES (?, ?, ?, ?, ?)",
            (response["id"], response["status"], _dump(response), _dump(input_items), _dump(context)),
        )

    def update_pending(self, response: dict) -> bool:
        """Replace the body only while the stored response is still queued or in progress."""
        return self._write(
            "UPDATE stored_responses SET status = ?, body = ? WHERE id = ? AND status IN (?, ?)",
            (response["status"], _dump(response), response["id"], *PENDING),
        ) > 0

    def get(self, response_id: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM stored_responses WHERE id = ?", (response_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def record(self, response_id: str) -> StoredResponse | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT body, input_items, context FROM stored_responses WHERE id = ?", (response_id,)
            ).fetchone()
        if row is None:
            return None
        return StoredResponse(*(json.loads(column) for column in row))

    def delete(self, response_id: str) -> bool:
        return self._write("DELETE FROM stored_responses WHERE id = ?", (response_id,)) > 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()
