"""``ClientGone`` (reference_gateway/event_stream.py): the client's leaving cancels the request's
task, and only that cancellation is taken back; anyone else's (the server shutting down) passes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from reference_gateway.errors import APIError
from reference_gateway.event_stream import ClientGone


def _request() -> tuple[SimpleNamespace, asyncio.Event]:
    gone = asyncio.Event()

    async def receive() -> dict:
        await gone.wait()
        return {"type": "http.disconnect"}

    return SimpleNamespace(receive=receive), gone


def test_the_client_leaving_during_the_work_is_a_499():
    async def run():
        request, gone = _request()
        watch = ClientGone(request)
        asyncio.get_running_loop().call_later(0.05, gone.set)
        try:
            await watch.guard(asyncio.sleep(10))
        finally:
            watch.stop()

    with pytest.raises(APIError) as caught:
        asyncio.run(asyncio.wait_for(run(), 5))
    assert caught.value.status == 499 and caught.value.code == "client_closed_request"


def test_a_cancellation_of_anyone_else_passes_through():
    async def run():
        request, _ = _request()
        task = asyncio.current_task()
        watch = ClientGone(request)
        asyncio.get_running_loop().call_later(0.05, task.cancel)  # the server shutting down
        try:
            await watch.guard(asyncio.sleep(10))
        finally:
            watch.stop()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())


def test_the_client_leaving_is_taken_back_once_a_later_cancellation_is_not():
    async def run():
        request, gone = _request()
        watch = ClientGone(request)
        gone.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            first = watch.took_it()
        asyncio.current_task().cancel()  # the shutdown, later
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            second = watch.took_it()
        watch.stop()
        return first, second

    assert asyncio.run(asyncio.wait_for(run(), 5)) == (True, False)


def test_nothing_is_cancelled_after_stop():
    async def run():
        request, gone = _request()
        watch = ClientGone(request)
        watch.stop()
        gone.set()
        await asyncio.sleep(0.05)  # a late disconnect (or a callback already scheduled) does nothing
        return "answered"

    assert asyncio.run(asyncio.wait_for(run(), 5)) == "answered"
