"""asyncio shell over the frame decoder, for the ASGI worker.

Back-pressure: when the reactor stops reading (its client reads slowly), the
transport's buffer fills, asyncio calls ``pause_writing``, and ``drain()``
hands senders a future that resolves on ``resume_writing``: the app's
``await send(...)`` waits instead of the worker buffering without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from swserve.ipc.framing import Frame, FrameDecoder


class AsyncChannel(asyncio.Protocol):
    def __init__(
        self, on_frames: Callable[[list[Frame]], None], on_lost: Callable[[], None]
    ) -> None:
        self.decoder = FrameDecoder()
        self._on_frames = on_frames
        self._on_lost = on_lost
        self._paused: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.Transport, transport
        )  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self._on_frames(self.decoder.feed(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        self._on_lost()

    def pause_writing(self) -> None:
        if self._paused is None or self._paused.done():
            self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def drain(self) -> asyncio.Future[None] | None:
        paused = self._paused
        return paused if paused is not None and not paused.done() else None

    def write(self, data: bytes) -> None:
        self.transport.write(data)
