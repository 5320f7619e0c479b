"""The ASGI worker: many concurrent requests on one uvloop event loop.

Each REQUEST frame becomes a task running the app with a fresh
:class:`RequestCycle`; DISCONNECT frames wake that cycle's ``receive``.
SIGTERM: stop taking requests, let the in-flight ones finish, run lifespan
shutdown, exit.  (The manager kills us if that takes longer than
``--graceful-timeout``.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from functools import partial
from typing import TYPE_CHECKING, BinaryIO, Final

from swserve.apps.asgi import ASGIApp, RequestCycle, build_scope
from swserve.apps.asgi_ws import SessionRunner, WebSocketCycle, build_ws_scope
from swserve.apps.lifespan import Lifespan
from swserve.config import Config
from swserve.errors import EXIT_OK, AppLoadError
from swserve.ipc import busy as busy_table, codec, framing, push
from swserve.ipc.channel_set import AsyncChannelSet
from swserve.net.proxy import Frontend
from swserve.protocol.request import RequestHead
from swserve.worker.frame_sink import AsyncFrameSink, AsyncWsSink
from swserve.worker.slowlog import Running, SlowLog
from swserve.worker.spooled import open_spooled

if TYPE_CHECKING:
    from swserve.worker.main import WorkerHooks

_HEARTBEAT: Final = framing.encode(framing.HEARTBEAT, 0, 0, 0)

log = logging.getLogger("swserve.error")


class ASGIWorker:
    def __init__(
        self,
        app: ASGIApp,
        config: Config,
        socks: list[socket.socket],
        worker_id: int,
        hooks: WorkerHooks,
        cell: int = 0,
    ) -> None:
        self.app = app
        self.table = busy_table.TABLE  # --reactors N: publish our load (ipc/busy.py)
        self.cell = cell
        self.hooks = hooks
        self.slowlog = SlowLog(config.slowlog_timeout, worker_id)
        self.config = config
        self.frontend = Frontend.from_config(config)
        self.socks = socks  # one link per reactor
        self.worker_id = worker_id
        self.lifespan = Lifespan(app, config.lifespan)
        self.cycles: dict[tuple[int, int], RequestCycle] = {}
        self.bodies: dict[tuple[int, int], tuple[RequestHead, list[framing.Buffer]]] = {}
        self.running: dict[tuple[int, int], asyncio.Task[None]] = {}
        # WebSocket sessions: not in `running`, so they never make the worker look busy
        self.ws = SessionRunner(self._start_ws_task, config.ws_max_queue)
        self.stopped: asyncio.Event

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        try:
            await self.lifespan.startup()
            if self.config.chroot:  # the app is loaded, nothing is served yet
                from swserve.process import chroot

                chroot.confine(self.config)
        except AppLoadError as exc:
            self.socks[0].sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, str(exc).encode()))
            raise
        self.channel = AsyncChannelSet(self._on_frames, self.stopped.set)
        await self.channel.connect(self.socks)
        push.attach(self.channel.write, loop)  # swserve.push from here: on these links
        loop.add_signal_handler(signal.SIGTERM, self.stopped.set)
        self.slowlog.install()
        ready = codec.encode_ready(
            self.worker_id, os.getpid(), self.config.asgi_concurrency, "asgi"
        )
        self.channel.write(framing.encode(framing.READY, 0, 0, 0, ready))
        self._heartbeat()
        await self.stopped.wait()
        self.channel.pause_reading()
        self.hooks.stopping()
        if self.running or self.ws.tasks:
            self.hooks.waiting()
            await asyncio.wait([*self.running.values(), *self.ws.tasks.values()])
        await self.lifespan.shutdown()
        self.channel.close()
        return EXIT_OK

    def _heartbeat(self) -> None:
        """Sent from the loop itself: if the loop is blocked, the reactor hears nothing."""
        if not self.stopped.is_set():
            self.channel.write(_HEARTBEAT)
            asyncio.get_running_loop().call_later(1.0, self._heartbeat)

    def _on_frames(self, frames: list[framing.Frame]) -> None:
        for kind, flags, session, request, payload in frames:
            key = (session, request)
            if kind == framing.REQUEST:
                head, body = codec.decode_request(payload)
                if flags & framing.SPOOLED:
                    self._start(key, head, open_spooled(bytes(body)))
                    continue
                if flags & framing.MORE:
                    self.bodies[key] = (head, [body])
                    continue
                # receive() hands out bytes: a BIG part's one copy (framing.BIG)
                self._start(key, head, body if type(body) is bytes else bytes(body))
            elif kind == framing.REQUEST_BODY:
                head, parts = self.bodies[key]
                parts.append(payload)
                if not flags & framing.MORE:
                    del self.bodies[key]
                    self._start(key, head, b"".join(parts))
            elif kind == framing.DISCONNECT:
                cycle = self.cycles.get(key)
                if cycle is not None:
                    cycle.disconnect()
                else:  # a WebSocket client that left during the handshake
                    self.ws.gone(key)
            elif kind == framing.CANCEL:
                task = self.running.get(key)
                if task is not None:
                    task.cancel()  # --timeout: the reactor has answered 504
            elif kind == framing.BUFFER_FULL or kind == framing.BUFFER_EMPTY:
                cycle = self.cycles.get(key)
                if cycle is not None:
                    cycle.set_writable(kind == framing.BUFFER_EMPTY)
                else:
                    self.ws.flow(key, kind == framing.BUFFER_EMPTY)
            elif kind == framing.STOP:
                self.stopped.set()
            elif kind == framing.WS_CONNECT:
                head, _ = codec.decode_request(payload)
                self.ws.connect(key, head, AsyncWsSink(self.channel, session, request))
            elif kind == framing.PUSH_REPLY:
                push.answer(request, flags, codec.decode_count(payload))
            else:  # WS_MESSAGE, WS_CLOSE
                self.ws.frame(kind, flags, key, payload)

    def _start(self, key: tuple[int, int], head: RequestHead, body: bytes | BinaryIO) -> None:
        sink = AsyncFrameSink(self.channel, key[0], key[1])
        cycle = RequestCycle(sink, body, head.method == b"HEAD")
        state = self.lifespan.state if self.lifespan.supported else None
        scope = build_scope(head, state, self.frontend)
        self.cycles[key] = cycle
        task = asyncio.get_running_loop().create_task(cycle.run(self.app, scope))
        self.running[key] = task
        if self.slowlog.timeout:
            self.slowlog.running[key] = Running(
                scope["method"], scope["path"][:200], stack=task.get_stack
            )
        if self.table is not None:
            self.table.set(self.cell, len(self.running))
        # one callback for all the bookkeeping: each add_done_callback costs a call
        task.add_done_callback(partial(self._done, key))

    def _start_ws_task(
        self, key: tuple[int, int], head: RequestHead, cycle: WebSocketCycle
    ) -> asyncio.Task[None]:
        state = self.lifespan.state if self.lifespan.supported else None
        scope = build_ws_scope(head, state, self.frontend, str(key[0]))
        return asyncio.get_running_loop().create_task(cycle.run(self.app, scope))

    def _done(self, key: tuple[int, int], task: asyncio.Task[None]) -> None:
        self.cycles.pop(key, None)
        self.running.pop(key, None)
        if self.slowlog.timeout:
            self.slowlog.running.pop(key, None)
        if self.table is not None:
            self.table.done(self.cell, len(self.running))


def run(worker: ASGIWorker) -> int:
    """Run ``worker`` on a new event loop (uvloop if it is installed) until it stops."""
    from swserve.process.loop import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(worker.main())
    finally:
        loop.close()
