"""WSGI worker loops: a blocking loop (``--threads 1``) or a thread pool.

With one thread there is no event loop at all: the worker blocks on its IPC
socket, runs one request, writes its frames, and blocks again.  This is the
fast path.  With ``--threads N`` the main thread reads frames and a pool of N
threads runs requests, each writing its own frames under the channel's lock.

Flow control (Swoole's onBufferFull/onBufferEmpty): when a client reads
slowly the reactor sends BUFFER_FULL for its request, and the thread writing
that response blocks before its next body frame until BUFFER_EMPTY (or
DISCONNECT, which ends the app's iteration).  With one thread the writer
itself reads those frames; with a pool the main thread does and wakes it.

A request whose client has already left (a DISCONNECT frame for it is
already here) is discarded without running the app (Swoole's discard_data).
"""

from __future__ import annotations

import logging
import signal
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

from swserve.apps.wsgi import Body, WSGIAdapter
from swserve.errors import EXIT_OK, ClientDisconnected
from swserve.ipc import busy as busy_table, codec, framing
from swserve.ipc.channel_set import Channel
from swserve.ipc.framing import Frame
from swserve.protocol.request import RequestHead
from swserve.worker.frame_sink import FrameSink
from swserve.worker.slowlog import Running, SlowLog
from swserve.worker.spooled import open_spooled

if TYPE_CHECKING:
    from swserve.worker.main import WorkerHooks

log = logging.getLogger("swserve.error")

_FLOW: Final = frozenset(
    {framing.BUFFER_FULL, framing.BUFFER_EMPTY, framing.DISCONNECT, framing.CANCEL}
)

_HEARTBEAT: Final = framing.encode(framing.HEARTBEAT, 0, 0, 0)

Key = tuple[int, int]


class StopWorker(Exception):
    """Raised by the SIGTERM handler while the worker waits for work."""


class Flow:
    """Which responses may be written now; shared by the reader and the writers."""

    def __init__(self, channel: Channel, threaded: bool) -> None:
        self.channel = channel
        self.threaded = threaded
        self.paused: dict[Key, threading.Event] = {}  # cleared while the client is behind
        self.gone: set[Key] = set()
        self.lock = threading.Lock()

    def on_frame(self, kind: int, key: Key) -> None:
        with self.lock:
            if kind == framing.BUFFER_FULL:
                self.paused.setdefault(key, threading.Event()).clear()
            elif kind == framing.BUFFER_EMPTY:
                event = self.paused.pop(key, None)
                if event is not None:
                    event.set()
            elif kind == framing.DISCONNECT:
                self.gone.add(key)
                event = self.paused.pop(key, None)
                if event is not None:
                    event.set()

    def wait_writable(self, key: Key) -> None:
        """Block while ``key``'s client is behind; raise ClientGone if it left.

        Raises:
            ClientDisconnected: a DISCONNECT for ``key`` has arrived.
            EOFError: the reactor went away while we waited.
        """
        if not self.threaded:
            self._pump(block=False)
            while key in self.paused and key not in self.gone:
                self._pump(block=True)
        else:
            event = self.paused.get(key)
            if event is not None:
                event.wait()
        if key in self.gone:
            raise ClientDisconnected

    def _pump(self, block: bool) -> None:
        channel = self.channel
        frames = [channel.recv_one()] if block else channel.recv_nowait()
        for frame in frames:
            if frame[0] in _FLOW:
                self.on_frame(frame[0], (frame[2], frame[3]))
            else:
                channel.frames.append(frame)  # a new request: the main loop takes it later

    def release_all(self) -> None:
        """The reactor is gone: wake every waiting writer (it will find its client gone)."""
        with self.lock:
            for key, event in self.paused.items():
                self.gone.add(key)
                event.set()
            self.paused.clear()

    def done(self, key: Key) -> None:
        with self.lock:
            self.paused.pop(key, None)
            self.gone.discard(key)


class WSGIWorker:
    def __init__(
        self,
        channel: Channel,
        adapter: WSGIAdapter,
        threads: int,
        hooks: WorkerHooks,
        slowlog: SlowLog,
        cell: int = 0,
    ) -> None:
        self.channel = channel
        # --reactors N: publish how many requests we hold (ipc/busy.py)
        self.table = busy_table.TABLE
        self.cell = cell
        self._held = 0
        self._held_lock = threading.Lock()
        self.adapter = adapter
        self.threads = threads
        self.hooks = hooks
        self.slowlog = slowlog
        self.flow = Flow(channel, threaded=threads > 1)
        if threads == 1:
            channel.unlocked()
        self.busy = 0
        self.stopping = False
        channel.on_idle = self.heartbeat

    def heartbeat(self) -> None:
        self.channel.send(_HEARTBEAT)

    def _on_sigterm(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = True
        if self.busy == 0 or self.threads > 1:
            raise StopWorker

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        pool = (
            ThreadPoolExecutor(self.threads, thread_name_prefix="swserve-wsgi")
            if self.threads > 1
            else None
        )
        self.slowlog.install()
        try:
            while not self.stopping:
                item = self._next_request()
                if item is None:
                    break
                head, body, session, request = item
                table = self.table
                if pool is None:
                    self.busy = 1
                    if table is not None:
                        table.set(self.cell, 1)
                        self._handle(head, body, session, request)
                        table.done(self.cell, 0)
                    else:
                        self._handle(head, body, session, request)
                    self.busy = 0
                elif table is not None:
                    self._hold(1)
                    pool.submit(self._handle_counted, head, body, session, request)
                else:
                    pool.submit(self._handle, head, body, session, request)
        except (StopWorker, EOFError):
            pass
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self.hooks.stopping()
            if pool is not None:
                if self.slowlog.running:
                    self.hooks.waiting()
                self.flow.release_all()
                pool.shutdown(wait=True)
        return EXIT_OK

    def _hold(self, delta: int) -> None:
        assert self.table is not None
        with self._held_lock:
            self._held += delta
            self.table.set(self.cell, self._held)

    def _handle_counted(self, head: RequestHead, body: Body, session: int, request: int) -> None:
        try:
            self._handle(head, body, session, request)
        finally:
            assert self.table is not None
            with self._held_lock:
                self._held -= 1
                self.table.done(self.cell, self._held)

    def _handle(self, head: RequestHead, body: Body, session: int, request: int) -> None:
        key = (session, request)
        running = self.slowlog.running if self.slowlog.timeout else None
        if running is not None:  # only then: it costs a few µs per request
            method, path = head.method.decode("latin-1"), head.target[:200].decode("latin-1")
            running[key] = Running(method, path, thread=threading.get_ident())
        try:
            if key in self.flow.gone:
                self.channel.send(
                    framing.encode(framing.RESPONSE_BODY, framing.END, session, request)
                )  # frees the slot
                return
            self.adapter(head, body, FrameSink(self.channel, session, request, self.flow))
        except BaseException:
            # SystemExit/KeyboardInterrupt from the app: the adapter only catches
            # Exception. End the response (the client sees a close) and go on.
            log.exception("the app raised a BaseException; the response is aborted")
            self.channel.send(
                framing.encode(framing.RESPONSE_BODY, framing.END | framing.MORE, session, request)
            )
            if self.threads == 1:
                raise
        finally:
            if running is not None:
                running.pop(key, None)
            if self.flow.paused or self.flow.gone:  # the lock only when flow control was used
                self.flow.done(key)

    def _next_request(self) -> tuple[RequestHead, Body, int, int] | None:
        channel = self.channel
        while True:
            frame = channel.recv()
            if frame is None:
                return None  # the reactor is gone
            kind, flags, session, request, payload = frame
            if kind == framing.REQUEST:
                head, part = codec.decode_request(payload)
                body: Body
                if flags & framing.SPOOLED:
                    body = open_spooled(bytes(part))
                elif flags & framing.MORE:
                    body = self._rest_of_body(part)
                else:  # the app reads bytes: a BIG part's one copy (framing.BIG)
                    body = part if type(part) is bytes else bytes(part)
                for other in channel.frames:  # a disconnect already queued behind it?
                    if (
                        other[0] == framing.DISCONNECT
                        and other[2] == session
                        and other[3] == request
                    ):
                        self.flow.gone.add((session, request))
                return head, body, session, request
            if kind == framing.STOP:
                return None  # retired: the reactor has nothing more for us
            if kind in _FLOW:
                self.flow.on_frame(kind, (session, request))
                continue
            log.error("unexpected %s frame from the reactor", framing.FRAME_NAMES[kind])

    def _rest_of_body(self, first: framing.Buffer) -> bytes:
        parts = [first]
        while True:
            frame: Frame | None = self.channel.recv()
            if frame is None:
                raise StopWorker
            kind, flags, _, _, payload = frame
            if kind != framing.REQUEST_BODY:
                raise StopWorker
            parts.append(payload)
            if not flags & framing.MORE:
                return b"".join(parts)
