"""The task API: ``swserve.task``, ``swserve.task_sync`` and ``swserve.task_nowait``.

Every swserve process that may call it (workers, task workers, user
processes) is told the task socket's path at start (``_process.TASK_SOCKET``);
outside swserve it is None and every call raises one clear
:class:`TasksUnavailable`.  A process opens its own link to the broker on
first use: one per event loop for ``await task(...)`` (an asyncio protocol on
that loop, so the loop never blocks), and one per process for blocking
callers, shared by every thread: sends are serialised by a lock, and a reader
thread started on the first waiting call hands each TASK_RESULT to the thread
that waits for it, by task id.  A link belongs to the process that opened it:
a child forked by the app opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from swserve.ipc import framing
from swserve.process import shared as _process
from swserve.tasks import codec
from swserve.tasks.errors import TasksUnavailable, TaskTimeout, TaskWorkerLost

T = TypeVar("T")

_GONE = "the task server went away (the server is stopping, or the master died)"


def _socket_path() -> str:
    path = _process.TASK_SOCKET
    if path is None:
        raise TasksUnavailable(
            "swserve tasks run only inside swserve: call them from a worker, a task worker "
            "or a --process user process of a server started with --task-workers N"
        )
    if not path:
        raise TasksUnavailable("this server has no task workers: start it with --task-workers N")
    return path


def _payload(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    name = codec.callable_name(fn)  # TypeError here, at the call site
    payload = codec.encode_task(name, args, kwargs)
    if len(payload) > framing.MAX_PAYLOAD:
        raise ValueError(
            f"the arguments of {name} pickle to {len(payload)} bytes, over the 16 MiB a task "
            "may carry: pass a file path or a key instead"
        )
    return payload


def _hello() -> bytes:
    return framing.encode(
        framing.TASK_HELLO, 0, 0, 0, codec.encode_hello(codec.CALLER, 0, os.getpid())
    )


# -- async callers ------------------------------------------------------------------------


class _AsyncLink(asyncio.Protocol):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.decoder = framing.FrameDecoder()
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.ids = itertools.count(1)
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for kind, flags, task_id, _, payload in self.decoder.feed(data):
            if kind == framing.TASK_RESULT:
                future = self.pending.pop(task_id, None)
                if future is not None and not future.done():
                    future.set_result((flags, bytes(payload)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for future in self.pending.values():
            if not future.done():
                future.set_exception(TaskWorkerLost(_GONE))
        self.pending.clear()

    async def call(self, payload: bytes) -> Any:
        if self.lost:
            raise TaskWorkerLost(_GONE)
        task_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[task_id] = future
        self.transport.write(framing.encode(framing.TASK_SUBMIT, 0, task_id, 0, payload))
        try:
            outcome, data = await future
        except asyncio.CancelledError:
            if self.pending.pop(task_id, None) is not None and not self.transport.is_closing():
                self.transport.write(framing.encode(framing.TASK_CANCEL, 0, task_id, 0))
            raise
        return codec.decode_result(outcome, data)


# one link per event loop: (its future while connecting, or once connected)
_async_links: dict[asyncio.AbstractEventLoop, asyncio.Future[_AsyncLink]] = {}


async def _async_link() -> _AsyncLink:
    loop = asyncio.get_running_loop()
    pending = _async_links.get(loop)
    if pending is not None:
        link = await asyncio.shield(pending)
        if not link.lost and link.pid == os.getpid():
            return link
    path = _socket_path()
    for old in [lp for lp in _async_links if lp.is_closed()]:
        del _async_links[old]
    future: asyncio.Future[_AsyncLink] = loop.create_future()
    _async_links[loop] = future
    try:
        _, link = await loop.create_unix_connection(_AsyncLink, path)
    except OSError as exc:
        del _async_links[loop]
        error = TaskWorkerLost(f"cannot reach the task server at {path}: {exc}")
        future.set_exception(error)
        future.exception()  # retrieved: no "never retrieved" warning if nobody else waits
        raise error from None
    link.transport.write(_hello())
    future.set_result(link)
    return link


def task(
    fn: Callable[..., Awaitable[T]] | Callable[..., T], *args: Any, **kwargs: Any
) -> Awaitable[T]:
    """Run ``fn(*args, **kwargs)`` in a task worker: ``await`` it for the result.

    The callable and the arguments are checked (and pickled) here, at the call;
    awaiting does not block the event loop.  Cancel the await (e.g. with
    ``asyncio.timeout``) to stop waiting: a queued task is then dropped, and a
    running one finishes with its result discarded.

    Raises:
        TypeError: ``fn`` is not a module-level function (raised by the call itself).
        TaskQueueFull, TaskTimeout, TaskWorkerLost, TasksUnavailable: see their docs.
        Exception: whatever ``fn`` raised, rebuilt here, with the remote traceback as
            ``__cause__``.
    """
    return _call(_payload(fn, args, kwargs))


async def _call(payload: bytes) -> Any:
    link = await _async_link()
    return await link.call(payload)


# -- blocking callers ---------------------------------------------------------------------


class _Waiter:
    __slots__ = ("error", "event", "outcome", "payload")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.outcome = 0
        self.payload = b""
        self.error: BaseException | None = None


class _SyncLink:
    """One blocking link per process, shared by its threads."""

    def __init__(self, path: str) -> None:
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
            self.sock.sendall(_hello())
        except OSError as exc:
            self.sock.close()
            raise TaskWorkerLost(f"cannot reach the task server at {path}: {exc}") from None
        self.lock = threading.Lock()  # one frame at a time, and pending/ids with it
        self.pending: dict[int, _Waiter] = {}
        self.ids = itertools.count(1)
        self.reader: threading.Thread | None = None
        self.dead = False

    def submit(self, payload: bytes, nowait: bool) -> tuple[int, _Waiter | None]:
        with self.lock:
            if self.dead:
                raise TaskWorkerLost(_GONE)
            task_id = next(self.ids)
            waiter = None
            if not nowait:
                waiter = self.pending[task_id] = _Waiter()
                if self.reader is None:
                    self.reader = threading.Thread(
                        target=self._read, name="swserve-tasks", daemon=True
                    )
                    self.reader.start()
            flags = framing.TASK_NOWAIT if nowait else 0
            try:
                self.sock.sendall(framing.encode(framing.TASK_SUBMIT, flags, task_id, 0, payload))
            except OSError:
                self.pending.pop(task_id, None)
                self.dead = True
                raise TaskWorkerLost(_GONE) from None
        return task_id, waiter

    def cancel(self, task_id: int) -> None:
        with self.lock:
            if self.pending.pop(task_id, None) is not None and not self.dead:
                with contextlib.suppress(OSError):
                    self.sock.sendall(framing.encode(framing.TASK_CANCEL, 0, task_id, 0))

    def _read(self) -> None:
        decoder = framing.FrameDecoder()
        try:
            while True:
                data = self.sock.recv(256 * 1024)
                if not data:
                    break
                for kind, flags, task_id, _, payload in decoder.feed(data):
                    if kind != framing.TASK_RESULT:
                        continue
                    with self.lock:
                        waiter = self.pending.pop(task_id, None)
                    if waiter is not None:
                        waiter.outcome, waiter.payload = flags, bytes(payload)
                        waiter.event.set()
        except OSError:
            pass
        finally:
            with self.lock:
                self.dead = True
                waiters, self.pending = list(self.pending.values()), {}
            for waiter in waiters:
                waiter.error = TaskWorkerLost(_GONE)
                waiter.event.set()


_sync_link: _SyncLink | None = None
_sync_lock = threading.Lock()


def _forget_links_in_child() -> None:
    """A forked child (the app's own fork) opens links of its own: the parent's stay the
    parent's, and a lock another thread held at the fork would never be released here."""
    global _sync_link, _sync_lock
    if _sync_link is not None:
        _sync_link.sock.close()  # our copy of the descriptor only
    _sync_link = None
    _sync_lock = threading.Lock()
    _async_links.clear()


os.register_at_fork(after_in_child=_forget_links_in_child)


def _blocking_link() -> _SyncLink:
    global _sync_link
    link = _sync_link
    if link is not None and not link.dead and link.pid == os.getpid():
        return link
    with _sync_lock:
        link = _sync_link
        if link is None or link.dead or link.pid != os.getpid():
            link = _sync_link = _SyncLink(_socket_path())
        return link


def task_sync(fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a task worker; block until its result (or ``timeout``).

    Safe from any number of threads at once.  Past ``timeout`` seconds the
    caller gets :class:`TaskTimeout`; the task itself is dropped if still
    queued, or finishes with its result discarded.

    Raises:
        TypeError, TaskQueueFull, TaskTimeout, TaskWorkerLost, TasksUnavailable, or what
        ``fn`` raised, as :func:`task` does.
    """
    payload = _payload(fn, args, kwargs)
    link = _blocking_link()
    task_id, waiter = link.submit(payload, nowait=False)
    assert waiter is not None
    if not waiter.event.wait(timeout):
        link.cancel(task_id)
        raise TaskTimeout(f"{codec.callable_name(fn)} did not answer within {timeout:g}s")
    if waiter.error is not None:
        raise waiter.error
    return cast(T, codec.decode_result(waiter.outcome, waiter.payload))


def task_nowait(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Submit ``fn(*args, **kwargs)`` to a task worker and return at once (fire and forget).

    Nothing is answered: a failure is logged by the task worker, and a task
    that finds the queue full is dropped, logged and counted by the master.
    It writes one small frame to a local socket, so it is fine to call from a
    coroutine too.
    """
    payload = _payload(fn, args, kwargs)
    _blocking_link().submit(payload, nowait=True)
