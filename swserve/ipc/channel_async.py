"""asyncio shell over the frame decoder, for the ASGI worker.

Back-pressure: when the reactor stops reading (its client reads slowly), the
transport's buffer fills, asyncio calls ``pause_writing``, and ``drain()``
hands senders a future that resolves on ``resume_writing``: the app's
``await send(...)`` waits instead of the worker buffering without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from swserve.ipc.framing import Buffer, Frame, FrameDecoder


class BatchWriter:
    """Coalesces the frames written during one loop iteration into one ``writelines``.

    Under load a reactor dispatches many requests per iteration (and an ASGI
    worker finishes many responses); one writev instead of one write each cut
    the CPU per request measured in loadtests/ (see the commit message).
    """

    __slots__ = ("_loop", "_out", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._out: list[Buffer] = []

    @property
    def pending(self) -> bool:
        """Frames are waiting for this iteration's flush (write directly only if not)."""
        return bool(self._out)

    def write(self, data: bytes) -> None:
        out = self._out
        if not out:
            self._loop.call_soon(self.flush)
        out.append(data)

    def writelines(self, data: list[Buffer]) -> None:
        if not self._out:
            self._loop.call_soon(self.flush)
        self._out.extend(data)

    def flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            if not self.transport.is_closing():
                self.transport.writelines(out)


# The channel's write buffer: over WRITE_HIGH, senders wait (``drain``) until it
# is under WRITE_LOW.  asyncio's defaults are 64 KiB / 16 KiB; a 1 MiB body
# is written whole either way (the wait comes before a write, apps/asgi.py).
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024


# Reads go into one buffer of READ_SIZE, reused (no ``bytes`` made per read); the rest of a
# BIG frame cut by a read, if at least DIRECT_MIN bytes of it are missing, is read straight
# into the bytearray the decoder assembles it in.  A 64 KiB WebSocket echo in process mode
# copied each message 2-3 times per IPC read (the read's bytes, the assembly, bytes() for
# the app), now 1-2 times.
READ_SIZE: Final = 256 * 1024
DIRECT_MIN: Final = 16 * 1024


class FrameReader:
    """The reading half of a BufferedProtocol over an IPC link: ``get_buffer`` then
    ``frames(nbytes)``, decoded by ``decoder``."""

    __slots__ = ("_direct", "_view", "decoder")

    def __init__(self, decoder: FrameDecoder) -> None:
        self.decoder = decoder
        self._view = memoryview(bytearray(READ_SIZE))
        self._direct = False  # the last get_buffer() handed out the decoder's target

    def get_buffer(self) -> memoryview:
        decoder = self.decoder
        if decoder.missing >= DIRECT_MIN:
            target = decoder.target()
            if target is not None:
                self._direct = True
                return target
        self._direct = False
        return self._view

    def frames(self, nbytes: int) -> list[Frame]:
        """The frames that the ``nbytes`` just read into ``get_buffer()`` complete."""
        if self._direct:
            return self.decoder.advance(nbytes)
        return self.decoder.feed(self._view[:nbytes], reused=True)


class AsyncChannel(asyncio.BufferedProtocol):
    def __init__(
        self, on_frames: Callable[[list[Frame]], None], on_lost: Callable[[], None]
    ) -> None:
        self.decoder = FrameDecoder()
        self.reader = FrameReader(self.decoder)
        self._on_frames = on_frames
        self._on_lost = on_lost
        self._paused: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self.writer = BatchWriter(self.transport, asyncio.get_running_loop())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.reader.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        frames = self.reader.frames(nbytes)
        if frames:
            self._on_frames(frames)

    def data_received(self, data: bytes) -> None:
        """The same, for a caller that has bytes (tests, or a transport without get_buffer)."""
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
        self.writer.write(data)

    def writelines(self, data: list[Buffer]) -> None:
        self.writer.writelines(data)
