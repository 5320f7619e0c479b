"""A worker's links to several reactors (``--reactors N``), seen as one channel.

Every reactor numbers its sessions from ``index << SESSION_SHIFT``, so a
session id names its reactor: a frame a worker sends for a request goes back
to the reactor the request came from, read from the frame's own header, and
frames without a session (READY, HEARTBEAT) go to every reactor.  The worker
loops (``worker/runner_wsgi.py``, ``worker/runner_asgi.py``) need no change
beyond taking a set instead of one channel.

A retired worker gets one STOP from each reactor, once that reactor has no
request left on it; the set hands the worker a single STOP after the last.
The link to reactor 0 (the master's) ending ends the set: the master is
stopping, or gone.  A link to reactor i > 0 that ends means that reactor
died and the master is forking its replacement on the same socket: the set
connects again at once (the connection waits in the socket's backlog until
the new reactor accepts it) and says HELLO and READY again (``Relink``).
Frames for the dead reactor's requests are dropped; the new reactor answers
later ones with a DISCONNECT, which stops what the app still runs for them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from swserve.ipc import framing
from swserve.ipc.buffers import widen
from swserve.ipc.channel_async import AsyncChannel
from swserve.ipc.channel_sync import RECV_SIZE, SyncChannel
from swserve.ipc.framing import Buffer, Frame

SESSION_SHIFT: Final = 48  # 2**48 sessions per reactor; up to 65535 reactors
GENERATION_SHIFT: Final = 40  # a respawned reactor's: (index << 48) | (generation << 40) | n
_SESSION: Final = slice(8, 16)  # where a frame's session id sits in its header


@dataclass
class Relink:
    """What a worker needs to link to a respawned reactor (set once, in the worker)."""

    paths: list[str]  # the reactors' worker-link sockets, by index
    hello: bytes  # this worker's HELLO frame
    ready: bytes = b""  # its READY frame, once sent


RELINK: Relink | None = None  # set by worker/main.py in process mode


def _connect(index: int) -> socket.socket | None:
    """A new link to reactor ``index``, greeted (None: no relink, or the master is gone)."""
    relink = RELINK
    if relink is None or index == 0:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    widen(sock)
    try:
        sock.connect(relink.paths[index])
        sock.sendall(relink.hello + relink.ready)
    except OSError:
        sock.close()
        return None
    return sock


def _note_ready(data: Buffer) -> None:
    if RELINK is not None and data[2] == framing.READY:
        RELINK.ready = bytes(data)


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
        self._stops: set[int] = set()  # the reactors that have retired us
        self._unlocked = False

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
            index = self.channels.index(channel)
            if not data:
                if not self._relink(index, fd):
                    return False
                continue
            for frame in channel.decoder.feed(data):
                if frame[0] == framing.STOP:
                    self._stops.add(index)
                    if len(self._stops) < len(self.channels):
                        continue  # retired by this reactor; the others may still send work
                self.frames.append(frame)
        return True

    def _relink(self, index: int, fd: int) -> bool:
        """Reactor ``index`` is gone: link to its replacement (False: reactor 0, stop)."""
        sock = _connect(index)
        if sock is None:
            return False
        old = self.channels[index]
        self._poll.unregister(fd)
        del self._by_fd[fd]
        # shut down, not closed: a writer thread may be sending on it right now
        with contextlib.suppress(OSError):
            old.sock.shutdown(socket.SHUT_RDWR)
        channel = SyncChannel(sock)
        if self._unlocked:
            channel.unlocked()
        self.channels[index] = channel
        self._by_fd[sock.fileno()] = channel
        self._poll.register(sock.fileno(), select.POLLIN)
        self._stops.discard(index)  # the new reactor retires us again if we are retiring
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
            index = session >> SESSION_SHIFT
            try:
                self.channels[index].send(data)
            except OSError:
                if index == 0:
                    raise
                # that reactor died with its client: the reply has nowhere to go
        else:  # no session: every reactor must hear it
            _note_ready(data)
            for index, channel in enumerate(self.channels):
                try:
                    channel.send(data)
                except OSError:
                    if index == 0:
                        raise

    def sendv(self, buffers: list[Buffer]) -> None:
        """A response's frames (always a request's: the first buffer's header names it)."""
        index = session_of(buffers[0]) >> SESSION_SHIFT
        try:
            self.channels[index].sendv(buffers)
        except OSError:
            if index == 0:
                raise

    def unlocked(self) -> None:
        self._unlocked = True
        for channel in self.channels:
            channel.unlocked()


class AsyncChannelSet:
    """The ASGI worker's side: one AsyncChannel per reactor on the worker's loop."""

    def __init__(
        self,
        on_frames: Callable[[list[Frame]], None],
        on_lost: Callable[[], None],
        on_reactor_lost: Callable[[int], None] | None = None,
    ):
        self._on_frames = on_frames
        self._on_lost = on_lost
        self._on_reactor_lost = on_reactor_lost  # reactor i > 0 died: its clients are gone
        self.channels: list[AsyncChannel] = []
        self._stops: set[int] = set()  # the reactors that have retired us
        self._closing = False

    async def connect(self, socks: list[socket.socket]) -> None:
        for index, sock in enumerate(socks):
            self.channels.append(await self._link(index, sock))
        if len(self.channels) == 1:
            self.write = self.channels[0].write  # type: ignore[method-assign]  # one reactor

    async def _link(self, index: int, sock: socket.socket) -> AsyncChannel:
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: AsyncChannel(partial(self._filter, index), partial(self._lost, index)),
            sock=sock,
        )
        return channel

    def _lost(self, index: int) -> None:
        if self._closing:
            return
        sock = _connect(index)
        if sock is None:
            self._on_lost()  # reactor 0: the master is stopping or gone
            return
        if self._on_reactor_lost is not None:
            self._on_reactor_lost(index)
        self._stops.discard(index)  # the new reactor retires us again if we are retiring
        task = asyncio.get_running_loop().create_task(self._link(index, sock))
        task.add_done_callback(partial(self._linked, index))

    def _linked(self, index: int, task: asyncio.Task[AsyncChannel]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._on_lost()
            return
        self.channels[index] = task.result()

    def _filter(self, index: int, frames: list[Frame]) -> None:
        if any(frame[0] == framing.STOP for frame in frames):
            kept = []
            for frame in frames:
                if frame[0] == framing.STOP:
                    self._stops.add(index)
                    if len(self._stops) < len(self.channels):
                        continue
                kept.append(frame)
            frames = kept
        self._on_frames(frames)

    def write(self, data: bytes) -> None:
        session = session_of(data)
        if session:
            self.channels[session >> SESSION_SHIFT].write(data)
        else:
            _note_ready(data)
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
        self._closing = True
        for channel in self.channels:
            channel.writer.flush()
            channel.transport.close()


Channel = SyncChannel | SyncChannelSet  # what a blocking worker reads and writes
