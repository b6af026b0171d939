"""SQLite store of Response objects: one row per response id, one transaction per write."""

from __future__ import annotations

import json
import sqlite3
import threading


class ResponseStore:
    def __init__(self, path: str = ":memory:") -> None:
        # One connection shared by the server's threads, serialised by a lock; SQLite itself
        # is fast enough at this size that a pool would add code, not speed.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, body TEXT NOT NULL)"
            )

    def put(self, response: dict) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (id, body) VALUES (?, ?)",
                    (response["id"], json.dumps(response, separators=(",", ":"))),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get(self, response_id: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM responses WHERE id = ?", (response_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def delete(self, response_id: str) -> bool:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM responses WHERE id = ?", (response_id,))
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()
