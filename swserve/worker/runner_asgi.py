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
from swserve.ipc.channel_set import SESSION_SHIFT, AsyncChannelSet
from swserve.proxy import Frontend
from swserve.static import handoff
from swserve.worker.slowlog import Running, SlowLog
from swserve.worker.spooled import open_spooled

if TYPE_CHECKING:
    from swserve.worker.main import WorkerHooks

_HEARTBEAT: Final = framing.encode(framing.HEARTBEAT, 0, 0, 0)

log = logging.getLogger("swserve.error")

_encode = framing.encode
_START: Final = framing.RESPONSE_START
_BODY: Final = framing.RESPONSE_BODY
_END: Final = framing.END
_MAX: Final = framing.MAX_PAYLOAD


class AsyncFrameSink:
    __slots__ = ("channel", "request", "session")

    def __init__(self, channel: AsyncChannelSet, session: int, request: int) -> None:
        self.channel = channel
        self.session = session
        self.request = request

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        if len(body) >= framing.BIG:  # header and body as separate buffers: no copy of the body
            self.channel.writelines(
                codec.response_start_frames(
                    self.session, self.request, status, flags, headers, body, end
                )
            )
            return
        if len(body) + len(headers) > _MAX - 16:
            payload = codec.encode_response_start(status, headers)
            self.channel.write(_encode(_START, flags, self.session, self.request, payload))
            self.send_body(body, end)
            return
        payload = codec.encode_response_start(status, headers, body)
        self.channel.write(
            _encode(_START, flags | (_END if end else 0), self.session, self.request, payload)
        )

    def send_body(self, data: bytes, end: bool) -> None:
        self.channel.writelines(framing.body_frames(self.session, self.request, data, end))

    def send_abort(self) -> None:
        self.channel.write(_encode(_BODY, _END | framing.MORE, self.session, self.request))

    def send_file(
        self, status: int, flags: int, headers: bytes, fd: int, offset: int, length: int
    ) -> None:
        """The body is ``fd``'s: the reactor gets the descriptor, the frame carries none."""
        frame = handoff.hand_over(
            self.session, self.request, status, flags, headers, fd, offset, length
        )
        self.channel.write(frame)

    def drain(self) -> asyncio.Future[None] | None:
        return self.channel.drain()


class AsyncWsSink(AsyncFrameSink):
    """A WebSocket session's side of the channel: WS_ACCEPT, WS_MESSAGE, WS_CLOSE, flow."""

    __slots__ = ()

    def accept(self, subprotocol: str | None, headers: bytes) -> None:
        payload = codec.encode_ws_accept(subprotocol, headers)
        self.channel.write(_encode(framing.WS_ACCEPT, 0, self.session, self.request, payload))

    def send_message(self, text: bool, data: bytes) -> None:
        self.channel.writelines(framing.message_frames(self.session, self.request, text, data))

    def close(self, code: int, reason: str) -> None:
        payload = codec.encode_ws_close(code, reason)
        self.channel.write(_encode(framing.WS_CLOSE, 0, self.session, self.request, payload))

    def hold(self, full: bool) -> None:
        kind = framing.BUFFER_FULL if full else framing.BUFFER_EMPTY
        self.channel.write(_encode(kind, 0, self.session, self.request))


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
        self.bodies: dict[tuple[int, int], tuple[list[bytes], list[framing.Buffer]]] = {}
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
                from swserve import chroot

                chroot.confine(self.config)
        except AppLoadError as exc:
            self.socks[0].sendall(_encode(framing.BOOT_ERROR, 0, 0, 0, str(exc).encode()))
            raise
        self.channel = AsyncChannelSet(self._on_frames, self.stopped.set, self._reactor_lost)
        await self.channel.connect(self.socks)
        push.attach(self.channel.write, loop)  # swserve.push from here: on these links
        loop.add_signal_handler(signal.SIGTERM, self.stopped.set)
        self.slowlog.install()
        ready = codec.encode_ready(
            self.worker_id, os.getpid(), self.config.asgi_concurrency, "asgi"
        )
        self.channel.write(_encode(framing.READY, 0, 0, 0, ready))
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
                fields, body = codec.decode_request(payload)
                if flags & framing.SPOOLED:
                    self._start(key, fields, open_spooled(bytes(body)))
                    continue
                if flags & framing.MORE:
                    self.bodies[key] = (fields, [body])
                    continue
                # receive() hands out bytes: a BIG part's one copy (framing.BIG)
                self._start(key, fields, body if type(body) is bytes else bytes(body))
            elif kind == framing.REQUEST_BODY:
                fields, parts = self.bodies[key]
                parts.append(payload)
                if not flags & framing.MORE:
                    del self.bodies[key]
                    self._start(key, fields, b"".join(parts))
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
                fields, _ = codec.decode_request(payload)
                self.ws.connect(key, fields, AsyncWsSink(self.channel, session, request))
            elif kind == framing.PUSH_REPLY:
                push.answer(request, flags, codec.decode_count(payload))
            else:  # WS_MESSAGE, WS_CLOSE
                self.ws.frame(kind, flags, key, payload)

    def _reactor_lost(self, index: int) -> None:
        """Reactor ``index`` died with its clients: the app hears they left (a respawned
        reactor starts afresh; what it would say about these sessions, nobody will)."""
        for key in [k for k in self.bodies if k[0] >> SESSION_SHIFT == index]:
            del self.bodies[key]
        for key, cycle in list(self.cycles.items()):
            if key[0] >> SESSION_SHIFT == index:
                cycle.disconnect()
        for key in [k for k in self.ws.cycles if k[0] >> SESSION_SHIFT == index]:
            self.ws.gone(key)  # receive() says websocket.disconnect, 1006

    def _start(self, key: tuple[int, int], fields: list[bytes], body: bytes | BinaryIO) -> None:
        sink = AsyncFrameSink(self.channel, key[0], key[1])
        cycle = RequestCycle(sink, body, fields[0] == b"HEAD")
        state = self.lifespan.state if self.lifespan.supported else None
        scope = build_scope(fields, state, self.frontend)
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
        self, key: tuple[int, int], fields: list[bytes], cycle: WebSocketCycle
    ) -> asyncio.Task[None]:
        state = self.lifespan.state if self.lifespan.supported else None
        scope = build_ws_scope(fields, state, self.frontend, str(key[0]))
        return asyncio.get_running_loop().create_task(cycle.run(self.app, scope))

    def _done(self, key: tuple[int, int], task: asyncio.Task[None]) -> None:
        self.cycles.pop(key, None)
        self.running.pop(key, None)
        if self.slowlog.timeout:
            self.slowlog.running.pop(key, None)
        if self.table is not None:
            self.table.done(self.cell, len(self.running))


def run(
    app: ASGIApp,
    config: Config,
    socks: list[socket.socket],
    worker_id: int,
    hooks: WorkerHooks,
    cell: int = 0,
) -> int:
    from swserve.reactor.loop import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(
            ASGIWorker(app, config, socks, worker_id, hooks, cell).main()
        )
    finally:
        loop.close()
