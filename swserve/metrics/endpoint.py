"""The metrics endpoint: /metrics, /healthz and /readyz on ``--metrics-bind``.

A deliberately small HTTP/1.x server on the master's event loop, apart from
the client listeners: it is for scrapers and probes, not for the app.
Each connection gets one answer and is closed (``Connection: close``), so
there is no keep-alive, pipelining or body to handle.  Everything it does is
bounded, so it can never hold up the reactor that shares its loop:

- the request head may be at most ``MAX_HEAD`` bytes and must arrive within
  ``HEAD_TIMEOUT`` seconds; at most ``MAX_CONNECTIONS`` are open at once,
  and further ones are closed at once;
- garbage gets 400, an unknown path 404, a method other than GET/HEAD 405,
  and the connection is closed.

:func:`respond` (head bytes in, response bytes out) is the sans-IO part.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Final, cast

from swserve.errors import ConfigError
from swserve.metrics.exposition import CONTENT_TYPE
from swserve.net.listeners import Listener, bind

log = logging.getLogger("swserve.error")

MAX_HEAD: Final = 8192
HEAD_TIMEOUT: Final = 10.0
MAX_CONNECTIONS: Final = 64
BACKLOG: Final = 64
TEXT: Final = "text/plain; charset=utf-8"

Snapshot = Callable[[], bytes]  # the rendered exposition
Readiness = Callable[[], tuple[bool, str]]


def _response(status: int, body: bytes, content_type: str = TEXT, *, head: bool = False) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


def respond(head: bytes, metrics: Snapshot, readiness: Readiness) -> bytes:
    """The whole response to one request head (without its final blank line)."""
    request_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
        return _response(400, b"bad request\n")
    method, target, _ = parts
    path = target.split(b"?", 1)[0]
    if path not in (b"/metrics", b"/healthz", b"/readyz"):
        return _response(404, b"not found: try /metrics, /healthz or /readyz\n")
    if method not in (b"GET", b"HEAD"):
        return _response(405, b"method not allowed\n")
    is_head = method == b"HEAD"
    if path == b"/metrics":
        return _response(200, metrics(), CONTENT_TYPE, head=is_head)
    if path == b"/healthz":
        return _response(200, b"ok\n", head=is_head)
    ready, why = readiness()
    return _response(200 if ready else 503, why.encode() + b"\n", head=is_head)


class _Connection(asyncio.Protocol):
    def __init__(self, endpoint: MetricsEndpoint) -> None:
        self.endpoint = endpoint
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if len(self.endpoint.connections) >= MAX_CONNECTIONS:
            self.transport.abort()
            return
        self.endpoint.connections.add(self)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(HEAD_TIMEOUT, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            end = self.buf.find(b"\n\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._answer(_response(431, b"request head too large\n"))
            return
        endpoint = self.endpoint
        try:
            answer = respond(self.buf[:end], endpoint.metrics, endpoint.readiness)
        except Exception:
            # a bug in collecting must not take the loop's reactor with it
            log.exception("the metrics endpoint failed to answer")
            answer = _response(500, b"internal error\n")
        self._answer(answer)

    def _answer(self, data: bytes) -> None:
        self.transport.write(data)
        self.transport.close()

    def eof_received(self) -> bool | None:
        return False  # a client that stops sending before a full head gets nothing

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.endpoint.connections.discard(self)


class MetricsEndpoint:
    """The bound metrics socket, then the server on the loop; one per master."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.connections: set[_Connection] = set()
        self.metrics: Snapshot = lambda: b""
        self.readiness: Readiness = lambda: (False, "starting")
        self._server: asyncio.Server | None = None

    @classmethod
    def bind(cls, address: str) -> MetricsEndpoint | None:
        """Bind ``--metrics-bind`` (before any fork, like the listeners); None when off.

        Raises:
            ConfigError: the address is malformed, in use or not ours to bind.
        """
        if not address:
            return None
        if address.startswith("unix:"):
            raise ConfigError(f"--metrics-bind {address!r}: give a HOST:PORT, not a unix socket")
        try:
            (listener,) = bind((address,), BACKLOG)
        except ConfigError as exc:
            raise ConfigError(f"--metrics-bind: {exc}") from None
        return cls(listener)

    async def start(self, metrics: Snapshot, readiness: Readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=self.listener.sock)
        log.info("Metrics on %s/metrics", self.listener.url)

    def close(self) -> None:
        """Stop serving; the socket is closed too (also in a forked child that never served)."""
        if self._server is not None:
            self._server.close()
        else:
            self.listener.sock.close()
        for conn in list(self.connections):
            conn.transport.abort()
