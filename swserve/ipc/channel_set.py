"""A worker's links to several reactors (``--reactors N``), seen as one channel.

Every reactor numbers its sessions from ``index << SESSION_SHIFT``, so a
session id names its reactor: a frame a worker sends for a request goes back
to the reactor the request came from, read from the frame's own header, and
frames without a session (READY, HEARTBEAT) go to every reactor.  The worker
loops (``worker/runner_wsgi.py``, ``worker/runner_asgi.py``) need no change
beyond taking a set instead of one channel.

A retired worker gets one STOP from each reactor, once that reactor has no
request left on it; the set hands the worker a single STOP after the last.
A link that ends (a reactor gone) ends the set: the master is stopping.
"""

from __future__ import annotations

import asyncio
import collections
import select
import socket
from collections.abc import Callable
from typing import Final

from swserve.ipc import framing
from swserve.ipc.channel_async import AsyncChannel
from swserve.ipc.channel_sync import RECV_SIZE, SyncChannel
from swserve.ipc.framing import Buffer, Frame

SESSION_SHIFT: Final = 48  # 2**48 sessions per reactor; up to 65535 reactors
_SESSION: Final = slice(8, 16)  # where a frame's session id sits in its header


def session_of(frame: Buffer) -> int:
    """The session id in a frame's header (0: the frame is about no request)."""
    return int.from_bytes(frame[_SESSION], "little")


class SyncChannelSet:
    """The blocking worker's side: a poll over every link, one frame at a time."""

    def __init__(
        self, socks: list[socket.socket], on_idle: Callable[[], None] | None = None
    ) -> None:
        self.channels = [SyncChannel(sock) for sock in socks]
        self.frames: collections.deque[Frame] = collections.deque()
        self.on_idle: Callable[[], None] | None = on_idle
        self._by_fd = {ch.sock.fileno(): ch for ch in self.channels}
        self._poll = select.poll()
        for fd in self._by_fd:
            self._poll.register(fd, select.POLLIN)
        self._stops = 0

    def _read(self, timeout_ms: int) -> bool:
        """Read what has arrived on any link into ``frames``; False at EOF."""
        events = self._poll.poll(timeout_ms)
        if not events:
            if self.on_idle is not None:
                self.on_idle()
            return True
        for fd, _ in events:
            channel = self._by_fd[fd]
            try:
                data = channel.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                return False
            for frame in channel.decoder.feed(data):
                if frame[0] == framing.STOP:
                    self._stops += 1
                    if self._stops < len(self.channels):
                        continue  # retired by this reactor; the others may still send work
                self.frames.append(frame)
        return True

    def recv(self) -> Frame | None:
        frames = self.frames
        while not frames:
            if not self._read(1000):
                return None
        return frames.popleft()

    def recv_nowait(self) -> list[Frame]:
        """Frames that have already arrived, without blocking (they are not queued)."""
        queued = len(self.frames)
        if not self._read(0):
            raise EOFError("a reactor is gone")
        out = list(self.frames)[queued:]
        for _ in out:
            self.frames.pop()
        return out

    def recv_one(self) -> Frame:
        """Block for the next frame that is not already queued (EOFError at EOF)."""
        queued = len(self.frames)
        while len(self.frames) == queued:
            if not self._read(1000):
                raise EOFError("a reactor is gone")
        frame = self.frames[queued]
        del self.frames[queued]
        return frame

    def send(self, data: bytes) -> None:
        session = session_of(data)
        if session:
            self.channels[session >> SESSION_SHIFT].send(data)
        else:  # no session: every reactor must hear it
            for channel in self.channels:
                channel.send(data)

    def sendv(self, buffers: list[Buffer]) -> None:
        """A response's frames (always a request's: the first buffer's header names it)."""
        self.channels[session_of(buffers[0]) >> SESSION_SHIFT].sendv(buffers)

    def unlocked(self) -> None:
        for channel in self.channels:
            channel.unlocked()


class AsyncChannelSet:
    """The ASGI worker's side: one AsyncChannel per reactor on the worker's loop."""

    def __init__(self, on_frames: Callable[[list[Frame]], None], on_lost: Callable[[], None]):
        self._on_frames = on_frames
        self._on_lost = on_lost
        self.channels: list[AsyncChannel] = []
        self._stops = 0

    async def connect(self, socks: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        for sock in socks:
            _, channel = await loop.create_unix_connection(
                lambda: AsyncChannel(self._filter, self._on_lost), sock=sock
            )
            self.channels.append(channel)
        if len(self.channels) == 1:
            self.write = self.channels[0].write  # type: ignore[method-assign]  # one reactor

    def _filter(self, frames: list[Frame]) -> None:
        if any(frame[0] == framing.STOP for frame in frames):
            kept = []
            for frame in frames:
                if frame[0] == framing.STOP:
                    self._stops += 1
                    if self._stops < len(self.channels):
                        continue
                kept.append(frame)
            frames = kept
        self._on_frames(frames)

    def write(self, data: bytes) -> None:
        session = session_of(data)
        if session:
            self.channels[session >> SESSION_SHIFT].write(data)
        else:
            for channel in self.channels:
                channel.write(data)

    def writelines(self, buffers: list[Buffer]) -> None:
        """A response's frames (always a request's: the first buffer's header names it)."""
        self.channels[session_of(buffers[0]) >> SESSION_SHIFT].writelines(buffers)

    # the blocking channels' names, so that one FrameSink (worker/frame_sink.py) writes to either
    send = write
    sendv = writelines

    def drain(self) -> asyncio.Future[None] | None:
        for channel in self.channels:
            waiter = channel.drain()
            if waiter is not None:
                return waiter
        return None

    def pause_reading(self) -> None:
        for channel in self.channels:
            channel.transport.pause_reading()

    def close(self) -> None:
        for channel in self.channels:
            channel.writer.flush()
            channel.transport.close()


Channel = SyncChannel | SyncChannelSet  # what a blocking worker reads and writes
