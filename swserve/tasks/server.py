"""The broker's shell in the master: the task socket, its links, a sweep for --task-timeout.

Created only with ``--task-workers N`` (N > 0).  Every caller and every task
worker connects to the task socket (``tasks.sock`` in the master's private
0700 directory, beside the reactors' sockets) and says TASK_HELLO with its
role.  Frames are decoded by the same :class:`~swserve.ipc.framing.FrameDecoder`
as the HTTP path; the decisions are the :class:`~swserve.tasks.broker.Broker`'s.

It gives the master control messages for the manager (``on_event(MESSAGE)``,
:mod:`swserve.ipc.control`): ``TaskReady`` (a task worker is linked: the
manager counts it ready), ``TaskRecycle`` and ``TaskTimeout``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from swserve.config import Config
from swserve.errors import IPCError
from swserve.ipc import control, framing
from swserve.ipc.buffers import widen
from swserve.ipc.channel_async import BatchWriter
from swserve.manager.policy import request_limit
from swserve.metrics.exposition import (
    TASK_DURATION,
    TASK_QUEUE,
    TASK_REJECTED,
    TASK_RUNNING,
    TASK_WORKERS_ALIVE,
    TASKS,
    bucket_labels,
    key,
    metric,
)
from swserve.tasks import broker as broker_mod, codec
from swserve.tasks.broker import Broker

log = logging.getLogger("swserve.error")


class TaskLink(asyncio.Protocol):
    def __init__(self, server: TaskServer) -> None:
        self.server = server
        self.decoder = framing.FrameDecoder()
        self.key = server.new_key()
        self.role = -1  # until TASK_HELLO
        self.slot = 0
        self.pid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        widen(transport.get_extra_info("socket"))
        self.writer = BatchWriter(self.transport, asyncio.get_running_loop())
        self.server.links[self.key] = self

    def data_received(self, data: bytes) -> None:
        server = self.server
        try:
            frames = self.decoder.feed(data)
        except IPCError as exc:
            log.error("a task link (pid %d) sent a malformed frame: %s", self.pid, exc)
            self.transport.abort()
            return
        for kind, flags, task_id, _, payload in frames:
            if kind == framing.TASK_SUBMIT and self.role >= 0:
                nowait = bool(flags & framing.TASK_NOWAIT)
                server.submit(self, task_id, bytes(payload), nowait)
            elif kind == framing.TASK_RESULT and self.role == codec.TASK_WORKER:
                server.apply(
                    server.broker.result(self.key, task_id, flags, bytes(payload), server.now())
                )
            elif kind == framing.TASK_CANCEL:
                server.apply(server.broker.cancel(self.key, task_id))
            elif kind == framing.TASK_HELLO and self.role < 0:
                try:
                    self.role, self.slot, self.pid = codec.decode_hello(payload)
                except ValueError as exc:
                    log.error("a task link sent a bad TASK_HELLO: %s", exc)
                    self.transport.abort()
                    return
                if self.role == codec.TASK_WORKER:
                    server.worker_ready(self)
            else:
                log.error(
                    "a task link (pid %d) sent an unexpected %s frame",
                    self.pid,
                    framing.FRAME_NAMES.get(kind, kind),
                )
                self.transport.abort()
                return
        server.check_idle()

    def send(self, frame: bytes) -> None:
        if not self.transport.is_closing():
            self.writer.write(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.lost(self)


class TaskServer:
    def __init__(self, config: Config, on_event: Callable[[control.Message], None]) -> None:
        self.config = config
        self.broker = Broker(config.task_queue_size, config.task_timeout)
        self.links: dict[int, TaskLink] = {}
        self._on_event = on_event
        self._keys = 0
        self._server: asyncio.Server | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self.draining = False
        self._idle = asyncio.Event()
        self._last_full_log = 0.0

    def new_key(self) -> int:
        self._keys += 1
        return self._keys

    def now(self) -> float:
        return self._loop.time()

    async def start(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_unix_server(lambda: TaskLink(self), sock=sock)
        self._tick()

    def _tick(self) -> None:
        self.apply(self.broker.tick(self.now()))
        timeout = self.config.task_timeout
        interval = min(1.0, timeout / 4) if timeout else 1.0
        self._tick_handle = self._loop.call_later(interval, self._tick)

    # -- events from links ------------------------------------------------------------------

    def submit(self, link: TaskLink, task_id: int, payload: bytes, nowait: bool) -> None:
        self.apply(self.broker.submit(link.key, task_id, payload, nowait, self.now()))

    def worker_ready(self, link: TaskLink) -> None:
        max_requests = self.config.task_max_requests
        limit = request_limit(max_requests, max_requests // 2)
        self._on_event(control.TaskReady(link.pid))
        self.apply(self.broker.worker_ready(link.key, link.slot, link.pid, limit))

    def lost(self, link: TaskLink) -> None:
        self.links.pop(link.key, None)
        if link.role == codec.TASK_WORKER:
            self.apply(self.broker.worker_lost(link.key, self.now()))
        else:
            self.broker.caller_lost(link.key)
        self.check_idle()

    # -- from the master ------------------------------------------------------------------------

    def retire(self, pid: int) -> None:
        self.apply(self.broker.retire(pid))

    async def drain(self, seconds: float) -> None:
        """Wait until nothing is queued or running, for up to ``seconds`` (shutdown)."""
        self._idle = asyncio.Event()
        self.draining = True
        self.check_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            log.warning(
                "graceful timeout: %d task(s) queued, %d running",
                len(self.broker.queue),
                len(self.broker.running),
            )

    def check_idle(self) -> None:
        if self.draining and not self.broker.busy():
            self.draining = False
            self._idle.set()

    def close(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._server is not None:
            self._server.close()
        for link in list(self.links.values()):
            link.transport.abort()

    # -- actions ----------------------------------------------------------------------------

    def apply(self, actions: list[broker_mod.Action]) -> None:
        for action in actions:
            if isinstance(action, broker_mod.Run):
                frame = framing.encode(framing.TASK_RUN, 0, action.gid, 0, action.payload)
                self.links[action.worker].send(frame)
            elif isinstance(action, broker_mod.Answer):
                caller = self.links.get(action.caller)
                frame = framing.encode(
                    framing.TASK_RESULT, action.outcome, action.task, 0, action.payload
                )
                if caller is not None:
                    caller.send(frame)
                if action.outcome == codec.QUEUE_FULL:
                    self._log_full()
            elif isinstance(action, broker_mod.Stop):
                link = self.links.get(action.worker)
                if link is not None:
                    link.send(framing.encode(framing.TASK_STOP, 0, 0, 0))
            elif isinstance(action, broker_mod.Recycle):
                self._on_event(control.TaskRecycle(action.pid, control.Reason(action.reason)))
            elif isinstance(action, broker_mod.TimedOut):
                log.warning(
                    "task %s ran past --task-timeout %gs on pid %d: replacing that task worker",
                    action.name,
                    action.seconds,
                    action.pid,
                )
                self._on_event(control.TaskTimeout(action.pid))
            else:
                if action.why == "the task queue is full":
                    self._log_full()
                log.debug("task %s: dropped (%s)", action.name, action.why)

    def _log_full(self) -> None:
        now = self.now()
        if now - self._last_full_log >= 5.0:  # at most one line every 5 s
            self._last_full_log = now
            log.warning(
                "the task queue is full (--task-queue-size %d): tasks are refused",
                self.config.task_queue_size,
            )

    # -- metrics -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        broker = self.broker
        counters = broker.counters
        out = {
            TASK_QUEUE: len(broker.queue),
            TASK_RUNNING: len(broker.running),
            TASK_WORKERS_ALIVE: broker.alive(),
            TASK_REJECTED: counters.rejected,
            TASK_DURATION + "_sum_us": counters.duration_us,
        }
        for outcome, n in counters.outcomes.items():
            out[key(TASKS, outcome)] = n
        labels = bucket_labels(metric(TASK_DURATION))
        for le, n in zip(labels, counters.buckets, strict=True):
            out[key(TASK_DURATION + "_bucket", le)] = n
        return out
