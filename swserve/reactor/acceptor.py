"""The accept loop: new connections to the reactor, within --max-connections.

Our own loop rather than ``loop.create_server`` because neither asyncio nor
uvloop can pause accepting: above ``--max-connections`` the listeners are
taken off the loop (connections wait in the kernel's listen backlog,
``--backlog``) and put back once the count is below the limit again.
``EMFILE``/``ENFILE`` (out of file descriptors) is logged and accepting backs
off for a moment instead of spinning (trio's serve_listeners does the same).

Resource handling: accepted sockets are handed to the loop at once; a socket
that could not be handed over is closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger("swserve.error")

ACCEPT_BATCH: Final = 64  # accepts per readiness event, so one busy listener cannot starve the loop
BACKOFF: Final = 0.1  # seconds to stop accepting after EMFILE
_RESOURCE_ERRORS: Final = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Acceptor:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listeners: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        count: Callable[[], int],
        limit: int,
        *,
        batch: int = ACCEPT_BATCH,
    ) -> None:
        self.loop = loop
        self.listeners = listeners
        self.factory = factory
        self.count = count
        self.limit = limit
        self.batch = batch  # accepts per readiness event
        self.accepting = False
        self.closed = False
        self._last_log = 0.0

    def start(self) -> None:
        self.resume()

    def pause(self) -> None:
        if self.accepting:
            self.accepting = False
            for sock in self.listeners:
                self.loop.remove_reader(sock.fileno())

    def resume(self) -> None:
        if not self.accepting and not self.closed:
            self.accepting = True
            for sock in self.listeners:
                self.loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        self.pause()
        self.closed = True

    def connection_closed(self) -> None:
        """A client connection ended: resume accepting if we had stopped at the limit."""
        if not self.accepting and not self.closed and (not self.limit or self.count() < self.limit):
            self.resume()

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self.batch):
            if self.limit and self.count() >= self.limit:
                self._log(
                    "--max-connections (%d) reached: new connections wait in the backlog",
                    self.limit,
                )
                self.pause()
                return
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._log("cannot accept: %s; backing off", exc.strerror or exc)
                    self.pause()
                    self.loop.call_later(BACKOFF, self.resume)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # the client gave up before we accepted: nothing to serve
                raise
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.create_task(self._hand_over(sock))

    async def _hand_over(self, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, sock)
        except OSError:
            sock.close()

    def _log(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log >= 5.0:  # at most one line every 5 s
            self._last_log = now
            log.warning(message, *args)
