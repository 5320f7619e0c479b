"""The reactor host seam: where reactors run, chosen once at start-up.

SWOOLE-MODEL.md: Swoole runs ``reactor_num`` reactor *threads* in the master.
Under CPython's GIL, reactors that must run in parallel have to be processes
(or threads on a free-threaded build).  Everything that depends on that
choice lives behind :class:`ReactorHost`; :func:`make_host` is the only place
that chooses, and nothing else may branch on it.

Today there is one host, :class:`InlineHost`: a single reactor on the
master's own event loop (``--reactors`` with process hosts is future work;
see the speed issue).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Protocol

from swserve.config import Config
from swserve.master.listeners import Listener
from swserve.reactor.acceptor import Acceptor
from swserve.reactor.core import Reactor
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.worker_link import WorkerLink


class ReactorHost(Protocol):
    """What the master needs from wherever its reactors run."""

    reactor: Reactor  # the (aggregate) view used for stats, retire and drain

    async def start(self, listeners: list[Listener], ipc_sock: socket.socket) -> None:
        """Serve the listeners and accept worker links on ``ipc_sock``."""
        ...

    def stop_accepting(self) -> None:
        """Close the listeners: no new client connections."""
        ...

    def close(self) -> None:
        """Abort every client connection and stop the reactors."""
        ...


class InlineHost:
    """One reactor, running on the master's event loop."""

    def __init__(self, config: Config, on_event: Callable[[str, object], None]) -> None:
        self.config = config
        self.reactor = Reactor(config, on_event=on_event)
        self._acceptor: Acceptor | None = None
        self._ipc_server: asyncio.Server | None = None

    async def start(self, listeners: list[Listener], ipc_sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reactor = self.reactor
        reactor.start(loop)
        tls = listeners[0].ssl if listeners else None  # open_listeners: one choice for all
        scheme = "http" if tls is None else "https"
        # base mode: workers accept on the listeners; this reactor links workers only
        serving = listeners if self.config.mode == "process" else []
        self._acceptor = acceptor = Acceptor(
            loop,
            [listener.sock for listener in serving],
            lambda: HttpConnection(reactor, scheme),
            lambda: len(reactor.sessions),
            self.config.max_connections,
            ssl=tls,
            handshake_timeout=self.config.header_timeout,
        )
        reactor.on_connection_closed = acceptor.connection_closed
        acceptor.start()
        self._ipc_server = await loop.create_unix_server(lambda: WorkerLink(reactor), sock=ipc_sock)

    def stop_accepting(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()

    def close(self) -> None:
        for conn in list(self.reactor.sessions.values()):
            conn.transport.abort()
        self.reactor.stop()
        if self._ipc_server is not None:
            self._ipc_server.close()


def make_host(config: Config, on_event: Callable[[str, object], None]) -> ReactorHost:
    """The one place that decides where reactors run."""
    return InlineHost(config, on_event)
