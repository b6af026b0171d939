"""The store's writer: every response write of the gateway, committed off the event loop, in
batches (group commit).

Why: a write is a transaction, and a durable commit waits for the disk (SQLite
``synchronous=FULL`` fsyncs, store_sqlite.py; PostgreSQL waits for its WAL flush). Run on the
event loop, one commit per response stalled every stream of the process for that long (12% of
the gateway's CPU at 256 streams, issue 17). Here one thread (``store-writer``) takes what is
queued, runs it as one transaction (``ResponseStore.write_many``: one fsync for all), and wakes
each waiting coroutine once its statements are committed; while it commits, the next batch
gathers. A write that must be durable before the client hears of it (a response stored at
``response.created``, a final response) is awaited by its caller; the others are not.

Live output: a stored stream's row is updated as its output grows, but never per token: a
stream marks itself changed (``track``), and every ``PROGRESS_INTERVAL_S`` the changed streams'
snapshots are written in one batch (so a response costs at most one update per interval,
whatever its token rate). At most one such batch is in flight; streams that change meanwhile
wait for the next one. What a crash loses is the output of the last interval: the row itself
was committed before its client saw ``response.created``, and stays ``in_progress`` until the
orphan sweep (background.py) fails it.

A batch that fails (a constraint, a broken connection) is retried statement group by group, so
only the writes that fail get the exception. Reads stay on the caller's thread: they share the
store's connection and lock, so a read may wait for one commit, never for a queue.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Protocol

from reference_gateway.store_contract import ResponseStore, Statement

log = logging.getLogger("reference_gateway")

# How often the live output of stored streams is written: what a GET may lag behind the stream,
# and what a crash may lose of an in-progress response's output. A quarter second is one update
# per ~25 tokens at 100 tokens/s, and shorter than a person polling would notice.
PROGRESS_INTERVAL_S = 0.25
# Statement groups per transaction: bounds one transaction's size and the wait it causes.
MAX_BATCH = 512


class Progressing(Protocol):
    """A stored stream whose live output is written as it grows (response_keeper.py)."""

    key: tuple[str, str]

    def progress_statements(self) -> list[Statement]:
        """The statements that store the events and the output so far."""


class StoreWriter:
    def __init__(self, store: ResponseStore, *, progress_interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.store = store
        self.progress_interval_s = progress_interval_s
        self._queue: queue.SimpleQueue[tuple[list[Statement], asyncio.Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._changed: dict[tuple[str, str], Progressing] = {}
        self._flusher: asyncio.Task | None = None
        self._closed = False
        self.batches = 0  # transactions committed (for tests and benchmarks)

    # -- on the event loop ----------------------------------------------------------------------
    def write(self, statements: list[Statement]) -> asyncio.Future:
        """Queue ``statements`` (one group: committed together, or failed together); the future
        is their row counts once committed. Call from the event loop."""
        if self._closed:
            raise RuntimeError("the store writer is closed")
        future = asyncio.get_running_loop().create_future()
        self._queue.put((statements, future))
        return future

    def write_soon(self, statements: list[Statement]) -> None:
        """``write`` that nobody waits for (a client gone): a failure is logged. After ``aclose``
        (a stream cut by the shutdown itself) it is dropped with a warning: the row stays
        pending, and the orphan sweep of the next process fails it (this one's lease is gone)."""
        if self._closed:
            log.warning("store: a write after shutdown was dropped")
            return
        self.write(statements).add_done_callback(_log_failure)

    def track(self, stream: Progressing) -> None:
        """``stream``'s output changed: store it with the next progress batch."""
        self._changed[stream.key] = stream
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_progress())

    def untrack(self, stream: Progressing) -> None:
        """``stream`` is final: its last progress is not written any more."""
        self._changed.pop(stream.key, None)

    async def _flush_progress(self) -> None:
        while True:
            await asyncio.sleep(self.progress_interval_s)
            if not self._changed:
                continue
            changed, self._changed = self._changed, {}
            try:
                await self.write([statement for stream in changed.values()
                                  for statement in stream.progress_statements()])
            except Exception:  # a store hiccup: the next interval writes the newer output
                log.exception("store: writing the live output of %d responses failed", len(changed))

    async def aclose(self) -> None:
        """Write what is queued, then stop the thread (the store stays open)."""
        if self._flusher is not None:
            self._flusher.cancel()
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    # -- on the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[list[Statement], asyncio.Future]]) -> None:
        try:
            counts = self.store.write_many([statement for statements, _ in batch for statement in statements])
        except Exception as exc:
            if len(batch) == 1:
                _settle([(batch[0][1], None, exc)])
                return
            for one in batch:  # find the group that failed; the others commit on their own
                self._commit([one])
            return
        self.batches += 1
        outcomes, start = [], 0
        for statements, future in batch:
            outcomes.append((future, counts[start:start + len(statements)], None))
            start += len(statements)
        _settle(outcomes)


def _settle(outcomes: list[tuple[asyncio.Future, list[int] | None, BaseException | None]]) -> None:
    """Hand each future its result (or exception) on its loop: one wake-up of a loop per batch."""
    def resolve(on_loop: list) -> None:
        for future, result, exc in on_loop:
            if future.done():  # its waiter was cancelled (a client gone): the write happened anyway
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, on_loop in by_loop.items():
        try:
            loop.call_soon_threadsafe(resolve, on_loop)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("store: a write failed", exc_info=future.exception())
