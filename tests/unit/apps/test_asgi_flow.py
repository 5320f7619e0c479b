"""RequestCycle.send and the worker channel's back-pressure (apps/asgi.py).

A fake sink stands in for the channel: it records frames and says whether the
channel's buffer is over its high-water mark (``drain`` returns a future then).
"""

from __future__ import annotations

import asyncio

import pytest

from swserve.apps.asgi import RequestCycle

pytestmark = pytest.mark.timeout(10)


class CongestibleSink:
    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes, bool]] = []
        self.congested: asyncio.Future[None] | None = None
        self.congest_after_write = False

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        self.frames.append(("start", body, end))
        self._written()

    def send_body(self, data: bytes, end: bool) -> None:
        self.frames.append(("body", data, end))
        self._written()

    def send_abort(self) -> None:
        self.frames.append(("abort", b"", True))

    def _written(self) -> None:
        if self.congest_after_write and self.congested is None:
            self.congested = asyncio.get_running_loop().create_future()

    def drain(self) -> asyncio.Future[None] | None:
        return self.congested if self.congested is not None and not self.congested.done() else None


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]}
LAST = {"type": "http.response.body", "body": b"abc"}


def test_a_finished_response_does_not_wait_for_the_channel() -> None:
    """Its task must end (and free the request) even if the shared buffer is now full."""
    asyncio.run(_finished_response())


async def _finished_response() -> None:
    sink = CongestibleSink()
    sink.congest_after_write = True
    cycle = RequestCycle(sink, b"", head=False)
    await cycle.send(START)
    await asyncio.wait_for(cycle.send(LAST), 1)  # waited forever on a never-drained channel
    assert sink.frames == [("start", b"abc", True)]


def test_a_congested_channel_holds_the_write_until_it_drains() -> None:
    """The request stays in flight meanwhile, so the reactor sends no more than its limit."""
    asyncio.run(_congested_channel())


async def _congested_channel() -> None:
    sink = CongestibleSink()
    sink.congested = asyncio.get_running_loop().create_future()
    cycle = RequestCycle(sink, b"", head=False)
    await cycle.send(START)
    sending = asyncio.create_task(cycle.send(LAST))
    await asyncio.sleep(0)
    assert sink.frames == []  # not written while the channel is over its high-water mark
    sink.congested.set_result(None)
    await asyncio.wait_for(sending, 1)
    assert sink.frames == [("start", b"abc", True)]
