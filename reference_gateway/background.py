"""Background responses: ``background: true`` runs the generation as an asyncio task.

The response is stored ``queued`` before the POST returns, ``in_progress`` once the task starts,
and terminal (completed / incomplete / failed) when it ends; clients poll ``GET``. ``cancel``
stores ``cancelled`` and stops the task. Every move out of ``queued``/``in_progress`` is a
conditional update (``ResponseStore.update_pending``), so a cancel racing the end of a
generation leaves exactly one of the two outcomes. On shutdown, unfinished tasks are cancelled
and their responses stored as ``failed``: no row stays ``in_progress`` forever because of this
process. (A row left behind by a process that was killed outright stays as it was.)

Streaming a background response is not offered (``stream: true`` with ``background: true`` is
refused in params.py): the generation uses the upstream's non-streamed call.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from reference_gateway import translate
from reference_gateway.errors import APIError
from reference_gateway.params import CreateRequest
from reference_gateway.store import PENDING, ResponseStore
from reference_gateway.upstream import Upstream

log = logging.getLogger("reference_gateway")


def not_cancellable(message: str) -> APIError:
    return APIError(400, message, param=None, code="response_not_cancellable")


class BackgroundRunner:
    def __init__(self, store: ResponseStore) -> None:
        self._store = store
        self._tasks: dict[str, asyncio.Task] = {}

    def start(self, req: CreateRequest, response: dict, chat: dict, upstream: Upstream) -> None:
        task = asyncio.create_task(self._run(req, copy.deepcopy(response), chat, upstream))
        self._tasks[response["id"]] = task
        task.add_done_callback(lambda _: self._tasks.pop(response["id"], None))

    async def _run(self, req: CreateRequest, response: dict, chat: dict, upstream: Upstream) -> None:
        response["status"] = "in_progress"
        if not self._store.update_pending(response):
            return  # cancelled before it started
        try:
            translate.from_chat_completion(req, response, await upstream.complete(chat))
        except APIError as exc:
            translate.fail(response, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background response %s failed", response["id"])
            translate.fail(response, "The gateway had an internal error.")
        self._store.update_pending(response)

    def cancel(self, response_id: str) -> dict | None:
        """The cancelled response, or None when no such response is stored."""
        body = self._store.get(response_id)
        if body is None:
            return None
        if not body.get("background"):
            raise not_cancellable("Only background responses can be cancelled.")
        if body["status"] not in PENDING:
            raise not_cancellable(f"Cannot cancel a response with status '{body['status']}'.")
        body["status"] = "cancelled"
        if not self._store.update_pending(body):
            status = (self._store.get(response_id) or {}).get("status", "deleted")
            raise not_cancellable(f"Cannot cancel a response with status '{status}'.")
        task = self._tasks.pop(response_id, None)
        if task is not None:
            task.cancel()
        return body

    async def shutdown(self) -> None:
        tasks = list(self._tasks.items())
        for _, task in tasks:
            task.cancel()
        for response_id, task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            body = self._store.get(response_id)
            if body is not None and body["status"] in PENDING:
                self._store.update_pending(translate.fail(body, "The gateway shut down before the response finished."))
