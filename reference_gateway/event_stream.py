"""A request's client watched for leaving, and a streamed body sent under that watch (app.py).

Why not Starlette's ``StreamingResponse``: under uvicorn (ASGI spec 2.3) it runs every stream in
an anyio task group, the body in one task and a listener for ``http.disconnect`` in another,
and app.py's ``unless_disconnected`` ran two more tasks and an ``asyncio.wait`` before it: four
tasks, a cancel scope and anyio's task-state bookkeeping per stream: their frames (anyio's task
group and cancel scopes, ``asyncio.wait``) held ~9 % of the gateway's py-spy samples at 256
streams of 16 tokens (reports/benchmarks/gateway-overhead.md). Here one
task per request listens: ``ClientGone`` waits for ``http.disconnect`` (once the body has been
read it is the only message left, so waiting for it takes nothing from the request) and, when
it comes, cancels the request's own task, whatever that task awaits then: the upstream's answer
(``guard``: the cancellation becomes the 499 below, and the upstream request is closed as the
cancellation unwinds it) or the stream (``EventStream``: it ends quietly, and the events'
producer, cancelled in its ``await``, stores the response failed, gateway.py ``ended``). A
cancellation from anyone else (the server shutting down) passes through as it came.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reference_gateway.errors import APIError

T = TypeVar("T")

# nginx's status for "the client closed the connection before the answer": it is never sent
# (nobody is there to read it), but the access log and the metrics show it.
CLIENT_CLOSED_REQUEST = 499


class ClientGone:
    """Cancels the current task when ``request``'s client goes away (module docstring); ``stop``
    when the request is answered."""

    def __init__(self, request: Request) -> None:
        self.gone = False
        self._stopped = False
        self._task = asyncio.current_task()
        self._watcher = asyncio.ensure_future(self._listen(request.receive))
        self._watcher.add_done_callback(self._fired)

    @staticmethod
    async def _listen(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    def _fired(self, watcher: asyncio.Future) -> None:
        # A done callback is scheduled, not run, when the watcher ends: one may come after
        # ``stop``, which must then be the end of it.
        if watcher.cancelled() or watcher.exception() is not None or self._stopped or self._task.done():
            return
        self.gone = True
        self._task.cancel()

    def took_it(self) -> bool:
        """After a CancelledError: True when it was this watch's alone (now taken back). Once:
        a later cancellation (the server shutting down) is not this watch's."""
        if not self.gone:
            return False
        self.gone = False
        return self._task.uncancel() == 0

    async def guard(self, work: Awaitable[T]) -> T:
        """``work`` (the upstream call of a create request, before anything is sent), or 499
        ``client_closed_request`` when the client goes away first."""
        try:
            return await work
        except asyncio.CancelledError:
            if self.took_it():
                raise APIError(CLIENT_CLOSED_REQUEST, "The client closed the connection before the answer.",
                               code="client_closed_request") from None
            raise

    def stop(self) -> None:
        self._stopped = True
        self._watcher.cancel()


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``, cancelled (and a 499) as soon as the client goes away."""
    watch = ClientGone(request)
    try:
        return await watch.guard(work)
    finally:
        watch.stop()


class EventStream(Response):
    """``body`` sent as a chunked ``text/event-stream`` under ``watch`` (which it stops), then
    ``close`` awaited, however the body ended (also when it never started)."""

    def __init__(self, body: AsyncIterator[bytes], *, media_type: str, headers: Mapping[str, str],
                 watch: ClientGone | None = None, close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._watch, self._close = watch, close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = self._watch if self._watch is not None else ClientGone(Request(scope, receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.took_it():
                raise
        finally:
            watch.stop()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()  # a body left at a ``yield`` (client gone during a send) ends now
            if self._close is not None:
                await self._close()
