"""Blocking shell over the frame decoder, for worker threads that block on a socket.

Resource handling: the channel does not own the socket; the worker closes it.
Error handling: ``recv`` returns None at EOF (the reactor is gone);
``IPCError`` from the decoder propagates, and the worker exits.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
from collections.abc import Callable

from swserve.ipc.framing import Buffer, Frame, FrameDecoder

RECV_SIZE = 256 * 1024


class SyncChannel:
    def __init__(self, sock: socket.socket, on_idle: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self._on_idle: Callable[[], None] | None = None
        self.on_idle = on_idle
        self.decoder = FrameDecoder()
        self.frames: collections.deque[Frame] = collections.deque()
        self.lock = threading.Lock()  # one writer at a time: frames must not interleave

    @property
    def on_idle(self) -> Callable[[], None] | None:
        """Called after each second of silence (the worker sends its heartbeat)."""
        return self._on_idle

    @on_idle.setter
    def on_idle(self, callback: Callable[[], None] | None) -> None:
        self._on_idle = callback
        if callback is not None:
            # recv() returns EAGAIN after a second of silence (one syscall, unlike
            # settimeout's poll+recv).  Set here, not only in __init__: a worker that
            # assigned its heartbeat after construction never sent one, and sat idle
            # until the reactor took it for hung and replaced it.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 1, 0))

    def recv(self) -> Frame | None:
        frames = self.frames
        decoder = self.decoder
        while not frames:
            target = decoder.target()
            try:
                if target is not None:
                    # the rest of a BIG frame: straight into its buffer, no copy of ours
                    count = self.sock.recv_into(target)
                    if count:
                        frames.extend(decoder.advance(count))
                        continue
                    return None
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                if self.on_idle is not None:
                    self.on_idle()
                continue
            except ConnectionResetError:
                return None
            if not data:
                return None
            frames.extend(decoder.feed(data))
        return frames.popleft()

    def recv_nowait(self) -> list[Frame]:
        """Frames that have already arrived, without blocking (they are not queued)."""
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError("the reactor is gone")
        return self.decoder.feed(data)

    def recv_one(self) -> Frame:
        """Block for the next frame that is not already queued (EOFError at EOF)."""
        while True:
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue  # SO_RCVTIMEO: keep waiting
            except ConnectionResetError:
                data = b""
            if not data:
                raise EOFError("the reactor is gone")
            frames = self.decoder.feed(data)
            if frames:
                self.frames.extend(frames[1:])
                return frames[0]

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def unlocked(self) -> None:
        """One thread only (``--threads 1``): send without taking the lock."""
        self.send = self.sock.sendall  # type: ignore[method-assign,assignment]

    def sendv(self, buffers: list[Buffer]) -> None:
        """Several buffers as one write: a BIG payload is not copied to join it to its header."""
        with self.lock:
            if len(buffers) == 1:
                self.sock.sendall(buffers[0])
            else:
                sendmsg_all(self.sock, buffers)


def sendmsg_all(sock: socket.socket, buffers: list[Buffer]) -> None:
    """``sendall`` for a list of buffers (sendmsg may stop short, as send does)."""
    views = [memoryview(b) for b in buffers]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            del views[0]
        if views and sent:
            views[0] = views[0][sent:]
