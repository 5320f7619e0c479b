"""Base mode's sinks: what an app sends goes straight into this process's reactor.

In process mode the same calls become IPC frames (``worker/runner_asgi.py``);
here they call the client connection (``reactor/http_conn.py``) and, after a
WebSocket's protocol switch, its :class:`~swserve.reactor.ws_conn.WsConnection`
on the worker's own loop.
"""

from __future__ import annotations

import os
import select
from typing import TYPE_CHECKING, Final, Protocol

from swserve.errors import ClientDisconnected
from swserve.ipc import framing
from swserve.static.serve import send_file

if TYPE_CHECKING:
    from swserve.apps.asgi_ws import WebSocketCycle
    from swserve.reactor.http_conn import HttpConnection
    from swserve.reactor.ws_conn import WsConnection


class Releaser(Protocol):
    def release(self, key: tuple[int, int], done: bool = False) -> None: ...


class LocalSink:
    """A response straight into the connection, on the loop, if it still waits for it.

    ``seq`` pins the request: after a timeout, a disconnect or the next
    pipelined request, whatever the app still sends is dropped, as a late
    frame is in process mode.
    """

    __slots__ = ("conn", "seq")

    def __init__(self, conn: HttpConnection, seq: int) -> None:
        self.conn = conn
        self.seq = seq

    @property
    def paused(self) -> bool:
        return self.conn.write_paused

    def _live(self) -> bool:
        conn = self.conn
        return conn.current is not None and conn.seq == self.seq

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        if self._live():
            self.conn.on_response_start(status, flags, headers, body, end)

    def send_body(self, data: bytes, end: bool) -> None:
        if self._live():
            self.conn.on_response_body(data, end)

    def send_abort(self) -> None:
        if self._live():
            self.conn.on_response_abort()

    def send_file(
        self, status: int, flags: int, headers: bytes, fd: int, offset: int, length: int
    ) -> None:
        """Base mode: this loop streams the file itself (static/serve.py)."""
        if self._live():
            metrics = self.conn.reactor.metrics
            if metrics is not None:
                metrics.file_responses += 1
            send_file(self.conn, status, flags, headers, fd, offset, length)
        else:
            os.close(fd)

    def drain(self) -> None:
        return None


_GONE: Final = select.POLLRDHUP | select.POLLHUP | select.POLLERR


class InlineSink(LocalSink):
    """The sink of an app that runs on the loop itself (``--threads 1``).

    While the app runs, the loop cannot see its client leave: ``connection_lost``
    waits until the app returns, and an endless stream (SSE, long polling) would
    hold the only worker for good.  So before each body part the socket is
    asked directly (one ``poll``, no wait) whether the peer has closed or reset
    it, and a client that has gone raises :class:`ClientDisconnected`, as a
    DISCONNECT frame does in process mode: the app's iterable is closed and the
    worker is free.  A write that failed (``is_closing``) says the same.
    """

    __slots__ = ("poller",)

    def __init__(self, conn: HttpConnection, seq: int) -> None:
        super().__init__(conn, seq)
        self.poller: select.poll | None = None

    def gone(self) -> bool:
        transport = self.conn.transport
        if transport.is_closing():
            return True
        poller = self.poller
        if poller is None:
            sock = transport.get_extra_info("socket")
            if sock is None:
                return False
            poller = self.poller = select.poll()
            poller.register(sock.fileno(), _GONE)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True

    def send_body(self, data: bytes, end: bool) -> None:
        if self._live():
            if not end and self.gone():
                raise ClientDisconnected
            self.conn.on_response_body(data, end)


class LocalWsSink(LocalSink):
    """A WebSocket session's app side, straight into this process's reactor."""

    __slots__ = ("cycle", "executor")

    def __init__(self, conn: HttpConnection, seq: int, executor: Releaser) -> None:
        super().__init__(conn, seq)
        self.executor = executor
        self.cycle: WebSocketCycle | None = None

    def accept(self, subprotocol: str | None, headers: bytes) -> None:
        conn = self.conn
        assert self.cycle is not None
        if self._live() and conn.upgrade is not None:
            conn.switch_to_websocket(subprotocol, headers, LocalWsPeer(self.cycle))
        else:  # the client left during the handshake
            self.cycle.on_close(1006, "")
        self.executor.release((conn.session, self.seq))

    def send_message(self, text: bool, data: bytes) -> None:
        ws = self.conn.ws
        if ws is not None:
            ws.send_message(text, data)

    def close(self, code: int, reason: str) -> None:
        ws = self.conn.ws
        if ws is not None:
            ws.close(code, reason)

    def hold(self, full: bool) -> None:
        ws = self.conn.ws
        if ws is not None:
            ws.hold(full)


class LocalWsPeer:
    """Where a base-mode session's messages go: its cycle, on this loop."""

    __slots__ = ("cycle",)
    key = 0

    def __init__(self, cycle: WebSocketCycle) -> None:
        self.cycle = cycle

    def ws_message(self, ws: WsConnection, text: bool, data: bytes) -> None:
        self.cycle.on_message(text, data)

    def ws_closed(self, ws: WsConnection, code: int, reason: str) -> None:
        self.cycle.on_close(code, reason)

    def ws_flow(self, ws: WsConnection, kind: int) -> None:
        self.cycle.set_writable(kind == framing.BUFFER_EMPTY)
