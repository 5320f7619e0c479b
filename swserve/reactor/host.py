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
import ssl
import time
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
from swserve.reactor.process import ReactorChild, respawn
from swserve.reactor.worker_link import WorkerLink

log = logging.getLogger("swserve.error")

_ADOPT: Final = control.encode(control.Adopt())
_VIEW: Final = control.encode(control.View())


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

    async def views(self) -> list[dict[str, Any]]:
        """What reactors 1 … N-1 hold (``reactor/view.py: reactor_view``), for `swserve ctl`."""
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

    async def views(self) -> list[dict[str, Any]]:
        return []  # one reactor: the master's own, read directly

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
        self._tls: ssl.SSLContext | None = None
        self._stopping = False

    def _acceptor_options(self) -> dict[str, Any]:
        return {"place": self._place}

    def connections(self) -> int:
        return self.reactor.connections() + sum(c.connections for c in self.children)

    async def start(self, listeners: list[Listener], ipc_sock: socket.socket) -> None:
        await super().start(listeners, ipc_sock)
        self._tls = listeners[0].ssl if listeners else None
        for child in self.children:
            self._watch(child)

    def _watch(self, child: ReactorChild) -> None:
        child.channel.setblocking(False)
        asyncio.get_running_loop().add_reader(child.channel, self._on_message, child)

    def lost(self, child: ReactorChild) -> None:
        """``child`` has died: what it held is gone; nothing goes to it until respawned."""
        self._read_rest(child)  # its last counts and metrics, sent before it went
        child.alive = False
        child.idle = True  # a drain does not wait for it
        for waiter in child.views:  # `swserve ctl` asked it: it will not answer now
            if not waiter.done():
                waiter.cancel()
        child.views.clear()
        asyncio.get_running_loop().remove_reader(child.channel)
        child.channel.close()
        child.connections = 0
        self.reactor.remote.lost(-child.index)  # its counters stay in /metrics, not its gauges
        if self._acceptor is not None:
            self._acceptor.connection_closed()  # below --max-connections again, perhaps
        self._check_idle()

    def _read_rest(self, child: ReactorChild) -> None:
        while True:
            try:
                message = child.channel.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except OSError:
                return
            if not message:
                return
            self._on_message(child)

    async def views(self) -> list[dict[str, Any]]:
        """Ask every live reactor for its view; one that does not answer in 1 s is left out."""
        loop = asyncio.get_running_loop()
        asked = []
        for child in self.children:
            if not child.alive:
                continue
            waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
            try:
                child.channel.send(_VIEW)
            except OSError:
                continue
            child.views.append(waiter)
            asked.append(waiter)
        if not asked:
            return []
        done, _ = await asyncio.wait(asked, timeout=1.0)
        return [waiter.result() for waiter in asked if waiter in done]

    def died(
        self,
        child: ReactorChild,
        status: int,
        retiring: Callable[[], list[control.Retire]],
        respawned: Callable[[int], None],
    ) -> None:
        """Respawn a reactor that died: only the connections it held are lost.

        As gunicorn's arbiter replaces a lost worker; Swoole's reactors are
        threads of the master, so there a reactor's crash is the server's.
        A reactor that dies within a second of its start is respawned after
        a back-off (0.1 s doubling to 5 s) rather than in a tight loop.
        ``retiring``: the workers being stopped, to name to the new reactor;
        ``respawned``: called with the new reactor's pid (the master watches its exit).
        """
        self.lost(child)
        lived = time.monotonic() - child.started
        child.delay = 0.0 if lived >= 1.0 else _longer(child.delay)
        log.error(
            "reactor %d (pid %d) died unexpectedly (status %d): its connections are lost; "
            "respawning it%s",
            child.index,
            child.pid,
            status,
            f" in {child.delay:g}s" if child.delay else "",
        )
        loop = asyncio.get_running_loop()
        loop.call_later(child.delay, self._respawn, child, retiring, respawned)

    def _respawn(
        self,
        child: ReactorChild,
        retiring: Callable[[], list[control.Retire]],
        respawned: Callable[[int], None],
    ) -> None:
        if self._stopping:
            return
        try:
            respawn(self.config, child, self._tls)
        except OSError as exc:  # EAGAIN, ENOMEM: try again later
            log.error("cannot fork reactor %d: %s", child.index, exc.strerror or exc)
            child.delay = _longer(child.delay)
            loop = asyncio.get_running_loop()
            loop.call_later(child.delay, self._respawn, child, retiring, respawned)
            return
        self._watch(child)
        for message in retiring():
            with contextlib.suppress(OSError):
                child.channel.send(control.encode(message))
        log.info("reactor %d respawned (pid %d)", child.index, child.pid)
        respawned(child.pid)

    def _place(self, sock: socket.socket) -> bool:
        """Give ``sock`` to the reactor holding the fewest connections (False: keep it)."""
        alive = [c for c in self.children if c.alive]
        if not alive:
            return False
        best = min(alive, key=lambda c: c.connections)
        # those still being handed to our own loop count: a burst of accepts all stayed here
        if best.connections >= self.reactor.connections() + self.reactor.arriving():
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
            case control.ViewReply(view=view):
                if child.views:
                    waiter = child.views.pop(0)
                    if not waiter.done():
                        waiter.set_result(view)
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
            if not child.alive:
                continue
            with contextlib.suppress(OSError):
                child.channel.send(message)

    def retire(self, message: control.Retire) -> None:
        super().retire(message)
        self._broadcast(control.encode(message))

    def drain(self) -> None:
        self._local_idle = False
        for child in self.children:
            child.idle = not child.alive  # one dead (awaiting its respawn) holds nothing
        self._broadcast(control.encode(control.Drain()))
        super().drain()

    def stop_accepting(self) -> None:
        self._stopping = True  # the first step of a stop: no reactor is respawned from here
        super().stop_accepting()

    def close(self) -> None:
        self._broadcast(control.encode(control.Close()))
        super().close()


def _longer(delay: float) -> float:
    """The next respawn back-off: 0.1 s, doubling, at most 5 s."""
    return min(max(0.1, delay * 2), 5.0)


def make_host(
    config: Config,
    on_event: Callable[[control.Message], None],
    children: list[ReactorChild] | None = None,
) -> ReactorHost:
    """The one place that decides where reactors run."""
    if children:
        return MultiHost(config, on_event, children)
    return InlineHost(config, on_event)
