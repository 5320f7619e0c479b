"""The pushing side of server push: one process's own links to the reactors.

Any process that can reach the reactors' IPC sockets can push: a worker of
either kind, and any process it starts (they inherit ``SWSERVE_PUSH``), such
as a task worker or a user process.  The links are this process's own, apart
from the worker's request links, so a push never waits behind a response and
a WSGI worker's request loop never sees a reply.

Callers never block on I/O: a frame is sent at once if the socket takes it,
else it waits in an outbox that one I/O thread flushes; the same thread reads
the replies (``PUSH_REPLY``) and completes each request's :class:`Delivery`
by its request id.  Frames from one process leave in the order they were
asked for, on one link per reactor, so per-session order from one sender
holds.  Links are opened on first use, and again after a fork.

Session ids on the wire: a process-mode id is the reactor's own number (its
top bits name the reactor, ``channel_set.SESSION_SHIFT``); a base-mode id,
``"worker.pid.n"``, travels as ``pid << 40 | n`` to the master, which routes
it to that worker (``reactor/push_route.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import select
import socket
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any, Final

from swserve.errors import IPCError
from swserve.ipc import codec, framing
from swserve.ipc.buffers import widen
from swserve.ipc.channel_set import SESSION_SHIFT

ENV: Final = "SWSERVE_PUSH"  # "process|base" ":" the reactors' socket paths, os.pathsep-joined
BASE_SHIFT: Final = 40  # base mode: pid << 40 | the worker's own session number
BASE_MASK: Final = (1 << BASE_SHIFT) - 1
OUTBOX_LIMIT: Final = 64 * 1024 * 1024  # a link's unsent bytes; past it, requests fail at once
NOT_INSIDE: Final = (
    "swserve push works only inside a swserve worker (or a process it started): "
    "there is no reactor to push through"
)


class Delivery(Future[Any]):
    """The outcome of one push request: ``result()`` blocks, ``await`` does not.

    A push or close → ``True`` (written to the client's buffer) or ``False``
    (the session has gone, or the client reads too slowly and the message was
    dropped); ``is_open``/``join``/``leave`` → ``bool``; a broadcast → how
    many clients it was written to.  Never an exception for a session that
    has gone.
    """

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()


class Gather:
    """One request's replies, from each reactor (or worker) it went to, added up."""

    __slots__ = ("count", "done", "left", "tag", "target")

    def __init__(self, target: Any, tag: int, left: int) -> None:
        self.target = target  # who learns the outcome (a Delivery, or a reply to pass on)
        self.tag = tag  # the request's frame type, or the asker's request id
        self.left = left
        self.count = 0
        self.done = False  # at least one said PUSH_DONE

    def add(self, outcome: int, count: int) -> int | None:
        """One reply; → the outcome once the last is in (DONE if any was), else None."""
        self.left -= 1
        self.count += count
        self.done = self.done or outcome == framing.PUSH_DONE
        if self.left > 0:
            return None
        return framing.PUSH_DONE if self.done else outcome


def settle(pending: dict[int, Gather], request: int, outcome: int, count: int) -> int | None:
    """One reply to ``request``; → its final outcome (and it leaves ``pending``) once all
    are in, else None."""
    gather = pending.get(request)
    if gather is None:
        return None
    final = gather.add(outcome, count)
    if final is not None:
        del pending[request]
    return final


def parse_session(session_id: str) -> tuple[int, bool]:
    """An app's session id → (the id on the wire, base mode?); (0, …) if it names none."""
    if not isinstance(session_id, str):
        raise TypeError(f"a session id is a str, not {type(session_id).__name__}")
    parts = session_id.split(".")
    try:
        if len(parts) == 1:
            return int(parts[0]), False
        if len(parts) == 3:
            pid, number = int(parts[1]), int(parts[2])
            if 0 < number <= BASE_MASK:
                return pid << BASE_SHIFT | number, True
    except ValueError:
        pass
    return 0, False


class _Link:
    __slots__ = ("decoder", "outbox", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.outbox = bytearray()
        self.decoder = framing.FrameDecoder()


class PushClient:
    """This process's links to the reactors, and the requests waiting for a reply."""

    def __init__(self, paths: list[str], base: bool) -> None:
        self.paths = paths
        self.base = base
        self.lock = threading.Lock()
        self.links: list[_Link] = []
        self.pending: dict[int, Gather] = {}
        self.ids = itertools.count(1)
        self.pid = 0
        self._wake_w = -1
        # an ASGI worker's own links (attach): its pushes keep their order with its sends
        self._write: Callable[[bytes], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._attached_pid = 0

    def attach(self, write: Callable[[bytes], None], loop: asyncio.AbstractEventLoop) -> None:
        """Push through an ASGI worker's own channel, written on its loop: a push right after
        ``websocket.accept`` (or after any message the app sent) arrives after it.  The
        worker hands each PUSH_REPLY to :meth:`answer`."""
        self._write = write
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._attached_pid = os.getpid()

    def answer(self, request: int, outcome: int, count: int) -> None:
        with self.lock:
            self._answer(request, outcome, count)

    # -- the caller's side ------------------------------------------------------------

    def request(self, kind: int, flags: int, session: int, payload: bytes) -> Delivery:
        """Send one frame to the reactor that owns ``session`` (0: to every reactor)."""
        delivery = Delivery()
        write = self._write
        if write is not None and self._attached_pid == os.getpid():
            with self.lock:
                rid = next(self.ids) & 0xFFFFFFFF or next(self.ids)
                fan = len(self.paths) if not session else 1
                self.pending[rid] = Gather(delivery, kind, fan)
            frame = framing.encode(kind, flags, session, rid, payload)
            if threading.get_ident() == self._loop_thread:
                write(frame)
            else:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(write, frame)
            return delivery
        with self.lock:
            if self.pid != os.getpid() and not self._connect():
                delivery.set_result(_result(kind, framing.PUSH_GONE, 0))
                return delivery  # the server is stopping: nothing is open any more
            links = self.links
            if session:
                index = 0 if self.base else session >> SESSION_SHIFT
                if index >= len(links):
                    delivery.set_result(_result(kind, framing.PUSH_GONE, 0))
                    return delivery
                targets = [links[index]]
            else:
                targets = links
            rid = next(self.ids) & 0xFFFFFFFF or next(self.ids)
            self.pending[rid] = Gather(delivery, kind, len(targets))
            frame = framing.encode(kind, flags, session, rid, payload)
            wake = False
            for link in targets:
                if link.outbox:
                    if len(link.outbox) > OUTBOX_LIMIT:
                        self._answer(rid, framing.PUSH_DROPPED, 0)
                        continue
                    link.outbox += frame
                    continue
                try:
                    sent = link.sock.send(frame)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:  # the reactor is gone (the server is stopping)
                    self._answer(rid, framing.PUSH_GONE, 0)
                    continue
                if sent < len(frame):
                    link.outbox += frame[sent:]
                    wake = True
            if wake:
                os.write(self._wake_w, b"w")
        return delivery

    def _connect(self) -> bool:
        """Open the links (first use, or in a forked child: the parent's are not ours)."""
        self.links = []
        self.pending = {}
        for path in self.paths:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            widen(sock)
            try:
                sock.connect(path)
            except OSError:
                sock.close()
                for link in self.links:
                    link.sock.close()
                self.links = []
                return False
            sock.setblocking(False)
            self.links.append(_Link(sock))
        wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.pid = os.getpid()
        thread = threading.Thread(
            target=self._run, args=(list(self.links), wake_r), name="swserve-push", daemon=True
        )
        thread.start()
        return True

    # -- the I/O thread -----------------------------------------------------------------

    def _run(self, links: list[_Link], wake_r: int) -> None:
        poll = select.poll()
        by_fd = {link.sock.fileno(): link for link in links}
        poll.register(wake_r, select.POLLIN)
        while True:
            with self.lock:
                for fd, link in by_fd.items():
                    poll.register(fd, select.POLLIN | (select.POLLOUT if link.outbox else 0))
            for fd, event in poll.poll():
                if fd == wake_r:
                    os.read(wake_r, 4096)
                    continue
                link = by_fd[fd]
                if event & select.POLLOUT:
                    self._flush(link)
                readable = event & (select.POLLIN | select.POLLHUP | select.POLLERR)
                if readable and not self._read(link):
                    self._lost()
                    os.close(wake_r)
                    return

    def _flush(self, link: _Link) -> None:
        with self.lock:
            try:
                sent = link.sock.send(link.outbox)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                link.outbox.clear()
                return
            del link.outbox[:sent]

    def _read(self, link: _Link) -> bool:
        try:
            data = link.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        try:
            frames = link.decoder.feed(data)
        except IPCError:
            return False
        with self.lock:
            for kind, flags, _, request, payload in frames:
                if kind == framing.PUSH_REPLY:
                    self._answer(request, flags, codec.decode_count(payload))
        return True

    def _answer(self, request: int, outcome: int, count: int) -> None:
        gather = self.pending.get(request)
        final = settle(self.pending, request, outcome, count)
        if gather is not None and final is not None:
            gather.target.set_result(_result(gather.tag, final, gather.count))

    def _lost(self) -> None:
        """A reactor is gone (the server stops): every waiting request fails, as gone."""
        with self.lock:
            pending, self.pending = self.pending, {}
            self.pid = 0  # the next request connects again (and fails if nothing is there)
            for link in self.links:
                link.sock.close()
            self.links = []
            os.close(self._wake_w)
        for gather in pending.values():
            gather.target.set_result(_result(gather.tag, framing.PUSH_GONE, gather.count))


def _result(kind: int, outcome: int, count: int) -> bool | int:
    if kind == framing.PUSH_BROADCAST:
        return count
    return outcome == framing.PUSH_DONE


_client: PushClient | None = None
_client_lock = threading.Lock()


def configure(paths: list[str], base: bool) -> None:
    """Called once in every worker: where the reactors are.  Processes the worker starts
    learn it from the environment."""
    global _client
    os.environ[ENV] = ("base" if base else "process") + ":" + os.pathsep.join(paths)
    _client = PushClient(paths, base)


def client() -> PushClient:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                value = os.environ.get(ENV, "")
                mode, _, paths = value.partition(":")
                if mode not in ("base", "process") or not paths:
                    raise RuntimeError(NOT_INSIDE)
                _client = PushClient(paths.split(os.pathsep), mode == "base")
    return _client


def attach(write: Callable[[bytes], None], loop: asyncio.AbstractEventLoop) -> None:
    client().attach(write, loop)


def answer(request: int, outcome: int, count: int) -> None:
    client().answer(request, outcome, count)


def reset() -> None:
    """Forget the links (tests; a process that leaves swserve)."""
    global _client
    with contextlib.suppress(KeyError):
        del os.environ[ENV]
    _client = None
