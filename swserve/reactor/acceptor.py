"""The accept loop: new connections to the reactor, within --max-connections.

Our own loop rather than ``loop.create_server`` because neither asyncio nor
uvloop can pause accepting: above ``--max-connections`` the listeners are
taken off the loop (connections wait in the kernel's listen backlog,
``--backlog``) and put back once the count is below the limit again.
``EMFILE``/``ENFILE`` (out of file descriptors) is logged and accepting backs
off for a moment instead of spinning (trio's serve_listeners does the same).

TLS (``ssl`` given) is a separate hand-over, chosen once in ``__init__``: the
plain path does no per-connection TLS check.  The protocol's
``connection_made`` comes only after the handshake, so a connection that is
still shaking hands is not a session: ``handshaking`` counts them against
``--max-connections``, and ``handshake_timeout`` (the reactor passes
``--header-timeout``) bounds how long a silent client can hold one, in the
opening handshake and in the closing one.

Resource handling: accepted sockets are handed to the loop at once; a socket
that could not be handed over is closed (uvloop closes it itself after a
failed handshake).  ``close`` cancels the handshakes still in progress.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Coroutine
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
        ssl: ssl_module.SSLContext | None = None,
        handshake_timeout: float = 60.0,
        place: Callable[[socket.socket], bool] | None = None,
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
        self.ssl = ssl
        self.handshake_timeout = handshake_timeout
        # --reactors N: place(sock) gives a connection to another reactor (True) or
        # leaves it to this one (False)
        self.place = place
        self.handshaking = 0  # accepted TLS connections whose handshake is not done
        self.handing_over = 0  # accepted, not yet a session (connect_accepted_socket pending)
        # called when a hand-over ends without a session (the reactor may be idle now)
        self.on_settled: Callable[[], None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._start: Callable[[socket.socket], Coroutine[None, None, None]] = (
            self._hand_over if ssl is None else self._hand_over_tls
        )

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
        for task in list(self._handshakes):
            task.cancel()  # not a session yet: like an idle connection, it is not drained

    def connection_closed(self) -> None:
        """A client connection ended: resume accepting if we had stopped at the limit."""
        if (
            not self.accepting
            and not self.closed
            and (not self.limit or self.count() + self.handshaking < self.limit)
        ):
            self.resume()

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self.batch):
            if self.limit and self.count() + self.handshaking >= self.limit:
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
            if self.place is not None and self.place(sock):
                continue
            self._begin(sock)

    def adopt(self, sock: socket.socket) -> None:
        """Serve a connection accepted elsewhere (a reactor process, from the master)."""
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._begin(sock)

    def _begin(self, sock: socket.socket) -> None:
        # counted from now, not from when the task first runs: a count taken in
        # between (a reactor's report to the master) must include it
        if self.ssl is None:
            self.handing_over += 1
        else:
            self.handshaking += 1
        self.loop.create_task(self._start(sock))

    async def _hand_over(self, sock: socket.socket) -> None:
        # counted (from _begin) until it is a session: a drain that looked only at
        # sessions could finish (and the process exit) with this connection in between
        try:
            await self.loop.connect_accepted_socket(self.factory, sock)
        except OSError:
            sock.close()
        finally:
            self.handing_over -= 1
            if self.on_settled is not None:
                self.on_settled()

    async def _hand_over_tls(self, sock: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handshakes.add(task)
        try:
            await self.loop.connect_accepted_socket(
                self.factory,
                sock,
                ssl=self.ssl,
                ssl_handshake_timeout=self.handshake_timeout,
                # and the closing exchange: a client that never answers our
                # close_notify holds its session (and a --max-connections
                # slot) no longer than this, not the default 30 s
                ssl_shutdown_timeout=self.handshake_timeout,
            )
        except OSError as exc:  # ssl.SSLError and the handshake timeout are OSErrors
            # a client's failure (old TLS version, no certificate, not TLS at all,
            # too slow), not the server's: at debug level only
            log.debug("TLS handshake failed: %s", exc)
            sock.close()
        finally:
            self._handshakes.discard(task)
            self.handshaking -= 1
            self.connection_closed()  # below --max-connections again, perhaps
            if self.on_settled is not None:
                self.on_settled()

    def _log(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log >= 5.0:  # at most one line every 5 s
            self._last_log = now
            log.warning(message, *args)
