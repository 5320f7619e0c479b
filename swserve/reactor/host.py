"""The reactor host seam: where reactors run, chosen once at start-up.

SWOOLE-MODEL.md: Swoole runs ``reactor_num`` reactor *threads* in the master.
Under CPython's GIL, reactors that must run in parallel have to be processes
(or threads on a free-threaded build).  Everything that depends on that
choice lives behind :class:`ReactorHost`; :func:`make_host` is the only place
that chooses, and nothing else may branch on it.

:class:`InlineHost` runs one reactor on the master's own event loop.
:class:`MultiHost` (``--reactors N``) adds N-1 reactor processes beside it
(reactor/process.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any, Final, Protocol

from swserve.config import Config
from swserve.ipc import control
from swserve.ipc.control import Mode
from swserve.net.listeners import Listener
from swserve.protocol.ws_handshake import GOING_AWAY
from swserve.reactor import push_redis
from swserve.reactor.acceptor import Acceptor
from swserve.reactor.core import Reactor
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.process import ReactorChild
from swserve.reactor.worker_link import WorkerLink

log = logging.getLogger("swserve.error")

_ADOPT: Final = control.encode(control.Adopt())


class ReactorHost(Protocol):
    """What the master needs from wherever its reactors run."""

    reactor: Reactor  # the (aggregate) view used for stats, retire and drain

    async def start(self, listeners: list[Listener], ipc_sock: socket.socket) -> None:
        """Serve the listeners and accept worker links on ``ipc_sock``."""
        ...

    def stop_accepting(self) -> None:
        """Close the listeners: no new client connections."""
        ...

    def connections(self) -> int:
        """Client connections held by every reactor."""
        ...

    def retire(self, message: control.Retire) -> None:
        """Every reactor: dispatch nothing more to ``pid``; STOP it once drained."""
        ...

    def watch(self, pid: int, count: int) -> None:
        """Report ``Served`` once ``pid`` has answered ``count`` requests (reactor 0 counts
        for all: the busy table holds each worker's own count)."""
        ...

    def drain(self) -> None:
        """Every reactor: no more keep-alive; "idle" once nothing is left to answer."""
        ...

    def close(self) -> None:
        """Abort every client connection and stop the reactors."""
        ...


class InlineHost:
    """One reactor, running on the master's event loop."""

    def __init__(self, config: Config, on_event: Callable[[control.Message], None]) -> None:
        self.config = config
        self.reactor = Reactor(config, on_event=on_event)
        if config.mode == Mode.BASE:  # no session here: push frames go on to the workers
            from swserve.reactor.push_route import PushRouter

            self.reactor.push = PushRouter(self.reactor)
        self._acceptor: Acceptor | None = None
        self._ipc_server: asyncio.Server | None = None
        self._bridge: push_redis.RedisBridge | None = None

    def _acceptor_options(self) -> dict[str, Any]:
        return {}

    def connections(self) -> int:
        return self.reactor.connections()

    def retire(self, message: control.Retire) -> None:
        self.reactor.retire(message.pid)

    def watch(self, pid: int, count: int) -> None:
        self.reactor.watch(pid, count)

    def drain(self) -> None:
        self.reactor.drain()

    async def start(self, listeners: list[Listener], ipc_sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reactor = self.reactor
        reactor.start(loop)
        tls = listeners[0].ssl if listeners else None  # open_listeners: one choice for all
        scheme = "http" if tls is None else "https"
        # base mode: workers accept on the listeners; this reactor links workers only
        serving = listeners if self.config.mode == Mode.PROCESS else []
        self._acceptor = acceptor = Acceptor(
            loop,
            [listener.sock for listener in serving],
            lambda: HttpConnection(reactor, scheme),
            self.connections,
            self.config.max_connections,
            ssl=tls,
            handshake_timeout=self.config.header_timeout,
            **self._acceptor_options(),
        )
        reactor.on_connection_closed = acceptor.connection_closed
        reactor.arriving = lambda: acceptor.handing_over + acceptor.handshaking
        acceptor.on_settled = reactor.check_idle
        acceptor.start()
        self._ipc_server = await loop.create_unix_server(lambda: WorkerLink(reactor), sock=ipc_sock)
        # --broadcast-url: this reactor (or the base-mode master) publishes and subscribes
        self._bridge = push_redis.start(self.config, reactor.push, ipc_sock, publisher=True)

    def stop_accepting(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()

    def close(self) -> None:
        self.reactor.ws.close_all(GOING_AWAY)  # sessions still open get a close frame first
        for conn in list(self.reactor.sessions.values()):
            conn.transport.abort()
        self.reactor.stop()
        if self._bridge is not None:
            self._bridge.stop()
        if self._ipc_server is not None:
            self._ipc_server.close()


class MultiHost(InlineHost):
    """``--reactors N``: reactor 0 on the master's loop, 1 … N-1 in forked processes.

    The master accepts every connection and gives it to the reactor holding
    the fewest; everything about workers as a whole stays with reactor 0
    (see reactor/process.py for the channel protocol).
    """

    def __init__(
        self,
        config: Config,
        on_event: Callable[[control.Message], None],
        children: list[ReactorChild],
    ) -> None:
        super().__init__(config, self._on_local_event)
        self._on_event = on_event
        self.children = children
        self._local_idle = False

    def _acceptor_options(self) -> dict[str, Any]:
        return {"place": self._place}

    def connections(self) -> int:
        return self.reactor.connections() + sum(c.connections for c in self.children)

    async def start(self, listeners: list[Listener], ipc_sock: socket.socket) -> None:
        await super().start(listeners, ipc_sock)
        loop = asyncio.get_running_loop()
        for child in self.children:
            child.channel.setblocking(False)
            loop.add_reader(child.channel, self._on_message, child)

    def _place(self, sock: socket.socket) -> bool:
        """Give ``sock`` to the reactor holding the fewest connections (False: keep it)."""
        best = min(self.children, key=lambda c: c.connections)
        if best.connections >= self.reactor.connections():
            return False
        try:
            socket.send_fds(best.channel, [_ADOPT], [sock.fileno()])
        except OSError:
            return False  # that reactor is gone or full: serve it here
        best.connections += 1
        best.sent += 1
        sock.close()
        return True

    def _on_message(self, child: ReactorChild) -> None:
        try:
            message = child.channel.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message = b""
        if not message:
            asyncio.get_running_loop().remove_reader(child.channel)
            return  # its exit is watched through its pidfd
        try:
            event = control.decode(message)
        except control.ControlError as exc:
            log.error("reactor %d sent a bad control message: %s", child.index, exc)
            return
        match event:
            case control.Connections(held=held, received=received):
                # a count the reactor made before the last connections handed over
                # reached it would let the master accept past --max-connections
                child.connections = held + child.sent - received
                if self._acceptor is not None:
                    self._acceptor.connection_closed()  # below --max-connections again, perhaps
            case control.MetricsSnapshot(counters=counters):
                self.reactor.remote.update(-child.index, counters)
            case control.Idle():
                child.idle = True
                self._check_idle()
            case control.Timeout():
                self._on_event(event)
            case _:
                log.error("reactor %d sent %r, which is not for the master", child.index, event)

    def _on_local_event(self, message: control.Message) -> None:
        if isinstance(message, control.Idle):
            self._local_idle = True
            self._check_idle()
        else:
            self._on_event(message)

    def _check_idle(self) -> None:
        if self._local_idle and all(c.idle for c in self.children):
            self._on_event(control.Idle())

    def _broadcast(self, message: bytes) -> None:
        for child in self.children:
            with contextlib.suppress(OSError):
                child.channel.send(message)

    def retire(self, message: control.Retire) -> None:
        super().retire(message)
        self._broadcast(control.encode(message))

    def drain(self) -> None:
        self._local_idle = False
        for child in self.children:
            child.idle = False
        self._broadcast(control.encode(control.Drain()))
        super().drain()

    def close(self) -> None:
        self._broadcast(control.encode(control.Close()))
        super().close()


def make_host(
    config: Config,
    on_event: Callable[[control.Message], None],
    children: list[ReactorChild] | None = None,
) -> ReactorHost:
    """The one place that decides where reactors run."""
    if children:
        return MultiHost(config, on_event, children)
    return InlineHost(config, on_event)
