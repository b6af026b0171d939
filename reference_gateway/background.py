"""Background responses: ``background: true`` runs the generation as an asyncio task.

The response is stored ``queued`` before the POST returns, ``in_progress`` once the task starts,
and terminal (completed / incomplete / failed) when it ends; clients poll ``GET``. ``cancel``
stores ``cancelled`` and stops the task. Every move out of ``queued``/``in_progress`` is a
conditional update (``ResponseStore.update_pending``), so a cancel racing the end of a
generation leaves exactly one of the two outcomes. All of it is scoped to the owner (tenant)
that created the response: another tenant's cancel is a 404, like an unknown id.

No row stays pending forever:
- On shutdown, unfinished tasks are cancelled and their responses stored as ``failed``.
- A process killed outright (kill -9, a lost machine) cannot do that, so every gateway process
  holds a lease in the store, renewed every ``orphan_after_s / HEARTBEATS_PER_LEASE`` seconds
  (``watch()``), and every process sweeps, at startup and at each heartbeat, the pending rows
  whose writer holds no live lease, storing them ``failed`` (``ORPHAN_MESSAGE``). A live
  process renews its lease several times per lease, so it is never swept unless its event loop
  stalls for a whole lease; if that happens its response ends ``failed`` and its own late
  update is refused by the conditional update: still exactly one outcome.
  After a kill -9, the dead process's background responses are ``failed`` within
  ``orphan_after_s`` (plus one heartbeat) of its last heartbeat, as soon as any process sharing
  the store (a restarted one, or another worker) runs.

Every pending row is swept the same way: a background response's, and a stored stream's (stored
``in_progress`` from its ``response.created`` on, response_keeper.py). The task's own writes go
through the store's writer thread (store_writer.py); the heartbeat, the sweep and ``cancel``
are single short statements on the event loop.

``background`` with ``stream`` (``start_stream``): the generation is the same event stream a
streamed response has (gateway.py's ``ChatAnswer``, stored and with its events kept as it goes,
response_keeper.py), run by a task of this runner instead of by the client's request. Its events
go to a ``Feed`` (response_feed.py) that the creating client and any ``GET ?stream=true``
(replay.py) follow; a client that goes away does not stop it; ``cancel`` does (the stream's
listeners then see it end without a terminal event, and the stored response is ``cancelled``).
Without ``stream``, the generation uses the upstream's non-streamed call and keeps no events.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from reference_gateway import translate
from reference_gateway.errors import APIError
from reference_gateway.params import CreateRequest
from reference_gateway.response_feed import Feed
from reference_gateway.store_contract import PENDING, ResponseStore
from reference_gateway.store_writer import StoreWriter
from reference_gateway.upstream import Upstream

log = logging.getLogger("reference_gateway")

# A lease lasts this many heartbeats: a process must miss several in a row to be declared dead.
HEARTBEATS_PER_LEASE = 5
DEFAULT_ORPHAN_AFTER_S = 30.0
ORPHAN_MESSAGE = "The gateway process running this response stopped before it finished."


def not_cancellable(message: str) -> APIError:
    return APIError(400, message, param=None, code="response_not_cancellable")


class BackgroundRunner:
    def __init__(self, store: ResponseStore, writer: StoreWriter, *,
                 orphan_after_s: float = DEFAULT_ORPHAN_AFTER_S) -> None:
        self._store = store
        self._writer = writer
        self._tasks: dict[str, asyncio.Task] = {}
        self._owners: dict[str, str] = {}
        self._feeds: dict[str, Feed] = {}  # the running background streams' events
        self._lease_s = orphan_after_s
        self._watcher: asyncio.Task | None = None

    # -- the lease and the orphan sweep --------------------------------------------------------
    def sweep(self) -> int:
        """Renew this process's lease, then store every orphan as ``failed``; how many."""
        self._store.heartbeat(self._lease_s)
        settled = 0
        for body, _owner in self._store.orphans():
            if self._store.settle_orphan(translate.fail(body, ORPHAN_MESSAGE)):
                settled += 1
                log.warning("background response %s: its gateway process is gone; stored as failed", body["id"])
        self._store.forget_expired()
        return settled

    def watch(self) -> None:
        """Sweep now, then keep the lease and sweep every heartbeat until ``shutdown()``."""
        self.sweep()
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        interval = self._lease_s / HEARTBEATS_PER_LEASE
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:  # a store hiccup must not end the heartbeat for good
                log.exception("background: heartbeat or orphan sweep failed")

    # -- responses ---------------------------------------------------------------------------
    def start(self, req: CreateRequest, response: dict, chat: dict, upstream: Upstream, *, owner: str,
              seal: Callable[[dict], dict] | None = None) -> None:
        task = asyncio.create_task(self._run(req, copy.deepcopy(response), chat, upstream, owner, seal))
        self._tasks[response["id"]] = task
        self._owners[response["id"]] = owner

        def forget(_task: asyncio.Task) -> None:
            self._tasks.pop(response["id"], None)
            self._owners.pop(response["id"], None)

        task.add_done_callback(forget)

    def start_stream(self, response_id: str, events: AsyncIterator[list[dict]], close: Callable[[], Awaitable[None]], *,
                     owner: str) -> Feed:
        """Run a background stream's ``events`` to their end (``close`` then closes its upstream
        request), published to the returned feed."""
        feed = Feed(owner)
        self._feeds[response_id] = feed

        async def run() -> None:
            try:
                async for batch in events:  # Gateway.open_events: batches of events
                    for event in batch:
                        feed.publish(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # ``ended`` already turned a bug into error + response.failed
                log.exception("background stream %s failed", response_id)
            finally:
                feed.close()
                self._feeds.pop(response_id, None)
                await events.aclose()
                await close()

        task = asyncio.create_task(run())
        self._tasks[response_id] = task
        self._owners[response_id] = owner

        def forget(_task: asyncio.Task) -> None:
            self._tasks.pop(response_id, None)
            self._owners.pop(response_id, None)

        task.add_done_callback(forget)
        return feed

    def feed(self, response_id: str, owner: str) -> Feed | None:
        """The running background stream ``owner`` has with that id, or None."""
        feed = self._feeds.get(response_id)
        return feed if feed is not None and feed.owner == owner else None

    async def _run(self, req: CreateRequest, response: dict, chat: dict, upstream: Upstream, owner: str,
                   seal: Callable[[dict], dict] | None = None) -> None:
        response["status"] = "in_progress"
        if not await self._update_pending(response, owner):
            return  # cancelled before it started
        try:
            translate.from_chat_completion(req, response, await upstream.complete(chat, truncation=req.truncation),
                                           seal=seal)
        except APIError as exc:
            translate.fail(response, exc.message, exc.code or "server_error")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background response %s failed", response["id"])
            translate.fail(response, "The gateway had an internal error.")
        await self._update_pending(response, owner)

    async def _update_pending(self, response: dict, owner: str) -> bool:
        """``ResponseStore.update_pending`` through the writer thread (off the event loop)."""
        (count,) = await self._writer.write([self._store.update_pending_statement(response, owner=owner)])
        return count > 0

    def cancel(self, response_id: str, owner: str) -> dict | None:
        """The cancelled response, or None when ``owner`` has no such response."""
        body = self._store.get(response_id, owner)
        if body is None:
            return None
        if not body.get("background"):
            raise not_cancellable("Only background responses can be cancelled.")
        if body["status"] not in PENDING:
            raise not_cancellable(f"Cannot cancel a response with status '{body['status']}'.")
        body["status"] = "cancelled"
        if not self._store.update_pending(body, owner=owner):
            status = (self._store.get(response_id, owner) or {}).get("status", "deleted")
            raise not_cancellable(f"Cannot cancel a response with status '{status}'.")
        task = self._tasks.pop(response_id, None)
        if task is not None:
            task.cancel()
        return body

    async def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
        tasks = [(response_id, task, self._owners.get(response_id)) for response_id, task in self._tasks.items()]
        for _, task, _ in tasks:
            task.cancel()
        for response_id, task, owner in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            body = self._store.get(response_id, owner) if owner is not None else None
            if body is not None and body["status"] in PENDING:
                self._store.update_pending(translate.fail(body, "The gateway shut down before the response finished."),
                                           owner=owner)
        if self._watcher is not None:
            self._store.release()
