"""WebSocket sessions in a reactor: one shell per session, and the table that owns them.

After the app accepts, the client connection (``reactor/http_conn.py``)
switches protocol: the bytes that follow go to a :class:`WsConnection`, which
feeds them to the sans-IO :class:`~swserve.protocol.websocket.WebSocketCore`
and passes whole messages to the session's *peer*, the place its app runs: a
worker link in process mode (WS_* frames), this process in base mode.  The
shell moves bytes and reads the clock; every protocol decision is the core's.

:class:`WsSessions` is the reactor's table of open sessions (by session id,
and by the worker each is pinned to), with one sweep for pings, close
deadlines and the drains: a retiring worker's sessions get 1012 after
``--ws-drain-timeout``, all sessions 1001 when the server shuts down, and a
dead worker's sessions 1011 at once.  Server push looks sessions up here by
id, and hears of each session that ends (``reactor/push_hub.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from swserve.config import WS_CLOSE_WAIT, Config
from swserve.ipc import framing
from swserve.protocol.ws_frames import server_head
from swserve.protocol.ws_handshake import (
    GOING_AWAY,
    INTERNAL_ERROR,
    SERVICE_RESTART,
    Closed,
    Message,
)

if TYPE_CHECKING:
    from swserve.metrics.requests import WebSocketMetrics
    from swserve.protocol.request import Request
    from swserve.protocol.websocket import WebSocketCore
    from swserve.reactor.http_conn import HttpConnection

log = logging.getLogger("swserve.error")

# From this payload size on, a frame's header and payload go out as two buffers of one writev
# instead of being joined into one bytes (a copy of the payload).
_GATHER: Final = 16 * 1024


class WsPeer(Protocol):
    """Where a session's app runs (a worker link, or this process in base mode)."""

    key: int  # the worker link's key (0 in base mode)

    def ws_message(self, ws: WsConnection, text: bool, data: bytes) -> None: ...
    def ws_closed(self, ws: WsConnection, code: int, reason: str) -> None: ...
    def ws_flow(self, ws: WsConnection, kind: int) -> None: ...


class WsConnection:
    """One open session: client bytes ↔ the core ↔ whole messages to and from the peer."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "close_by",
        "conn",
        "core",
        "key",
        "messages_in",
        "messages_out",
        "opened_at",
        "peer",
        "peer_told",
        "request",
        "table",
        "transport",
        "worker_id",
        "worker_pid",
    )

    def __init__(
        self,
        conn: HttpConnection,
        request: Request,
        core: WebSocketCore,
        peer: WsPeer,
        table: WsSessions,
    ) -> None:
        self.conn = conn
        self.transport = conn.transport  # the client's, for the session's life
        self.request = request  # the upgrade request, for the access log
        self.core = core
        self.peer: WsPeer | None = peer
        self.key = peer.key  # the worker this session is pinned to, for its life
        self.table = table
        self.peer_told = False  # the app has been told the session ended
        self.close_by = 0.0  # our close frame went out: cut the TCP connection by then
        self.opened_at = time.monotonic()
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        slot = conn.slot
        self.worker_id = slot.worker_id if slot is not None else 0
        self.worker_pid = slot.pid if slot is not None else 0

    @property
    def session(self) -> int:
        return self.conn.session

    @property
    def seq(self) -> int:
        return self.conn.seq

    # -- from the client ----------------------------------------------------------------

    def data_received(self, data: framing.Buffer) -> None:
        self._events(self.core.feed(data))
        self._flush()

    def advanced(self, count: int) -> None:
        """``count`` bytes were read into ``core.read_target()`` (:class:`WsReader`)."""
        self._events(self.core.advance(count))
        self._flush()

    def eof_received(self) -> None:
        self._events(self.core.feed(b""))
        self._flush()

    def _events(self, events: list[Message | Closed]) -> None:
        peer = self.peer
        for event in events:
            if isinstance(event, Message):
                self.messages_in += 1
                self.bytes_in += len(event.data)
                metrics = self.table.metrics
                if metrics is not None:
                    metrics.messages_in += 1
                    metrics.bytes_in += len(event.data)
                if peer is not None:
                    peer.ws_message(self, event.text, event.data)
            else:
                error = self.core.error
                if error is not None and not isinstance(error, EOFError):
                    # a client's fault, answered with the RFC's code: debug, never a traceback
                    log.debug(
                        "websocket session %d failed: %s (closing with %d)",
                        self.session,
                        error,
                        event.code,
                    )
                self._tell_peer(event.code, event.reason)
                self.close_by = self.close_by or self.table.clock() + WS_CLOSE_WAIT

    def _tell_peer(self, code: int, reason: str) -> None:
        if not self.peer_told:
            self.peer_told = True
            if self.peer is not None:
                self.peer.ws_closed(self, code, reason)

    def _flush(self) -> None:
        transport = self.conn.transport
        for data in self.core.output():
            if data is None:  # the close handshake is over (or failed): end the TCP stream
                transport.close()
                return
            transport.write(data)

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.ws_flow(self, framing.BUFFER_FULL)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.ws_flow(self, framing.BUFFER_EMPTY)

    def connection_lost(self) -> None:
        closed = self.core.finish()
        self._tell_peer(closed.code, closed.reason)
        self.table.remove(self, closed.code)
        access = self.conn.reactor.access_log
        if access is not None:
            access.write(
                self.request,
                self.conn.prefix[1].decode() or "-",
                101,
                self.bytes_out,
                time.monotonic() - self.opened_at,
                self.worker_id,
                self.worker_pid,
                (self.messages_in, self.messages_out, closed.code),
            )

    # -- from the app -------------------------------------------------------------------

    def send_message(self, text: bool, data: framing.Buffer) -> None:
        """A whole message from the app: ``bytes``, or for a large one a view of the IPC read
        (or the ``bytearray`` it was assembled in), never copied here."""
        core = self.core
        if core.plain:
            # no extension rewrites the frame: its header is ours to write, and the payload
            # goes out as it came.  websockets' send_binary() copies the payload twice
            # (Frame.serialize: BytesIO, getvalue) before the write copies it again: framing
            # took 4.2 µs for 64 KiB and 2.3 µs for 64 B that way, 0.6 and 0.4 µs here.
            transport = self.transport
            if len(data) < _GATHER:
                transport.write(server_head(text, len(data)) + data)
            else:  # header and payload in one writev
                transport.writelines((server_head(text, len(data)), data))
        elif core.send(text, bytes(data)):
            self._flush()
        else:
            return
        self.messages_out += 1
        self.bytes_out += len(data)
        metrics = self.table.metrics
        if metrics is not None:
            metrics.messages_out += 1
            metrics.bytes_out += len(data)

    def close(self, code: int, reason: str) -> None:
        """The app closes the session (or the reactor does: drain, worker death)."""
        if self.core.open:
            self.core.close(code, reason)
            self.close_by = self.table.clock() + WS_CLOSE_WAIT
            self._flush()

    def hold(self, full: bool) -> None:
        """The app has ``--ws-max-queue`` messages unread: stop reading from the client."""
        transport = self.conn.transport
        if full:
            transport.pause_reading()
        elif not transport.is_closing():
            transport.resume_reading()

    def go_away(self, code: int, peer_alive: bool = True, reason: str = "") -> None:
        """The reactor ends the session: 1012 (drained), 1001 (shutdown), 1011 (worker died),
        or any code a push asks for (``swserve.close``)."""
        if not peer_alive:
            self.peer = None
        self._tell_peer(code, reason)
        self.close(code, reason)
        if not self.close_by:  # already closing: keep the deadline it has
            self.close_by = self.table.clock() + WS_CLOSE_WAIT

    def tick(self, now: float, config: Config) -> None:
        core = self.core
        if self.close_by:
            if now >= self.close_by:
                self.conn.transport.abort()  # the client never answered our close frame
            return
        interval = config.ws_ping_interval
        if not interval or not core.open:
            return
        if core.ping_sent:
            if now - core.ping_sent >= config.ws_ping_timeout:
                log.debug("websocket session %d missed its pong: closing", self.session)
                self.go_away(INTERNAL_ERROR)
        elif now - self.table.last_ping.get(self.session, self.opened_at) >= interval:
            self.table.last_ping[self.session] = now
            core.ping(now)
            self._flush()


# One read buffer for every session of this process: a read is consumed before the next.
_READ: Final = memoryview(bytearray(256 * 1024))


class WsReader(asyncio.BufferedProtocol):
    """A plain-TCP session's transport protocol after the 101 (``transport.set_protocol``).

    The client's bytes are read into one buffer shared by every session (the core keeps no
    view of it), and the rest of a large frame cut by a read straight into the buffer the
    core gathers it in, instead of uvloop making a ``bytes`` of every read: one copy of each
    large message fewer.  The rest is the connection's, as before.
    """

    __slots__ = ("_direct", "conn", "ws")

    def __init__(self, conn: HttpConnection, ws: WsConnection) -> None:
        self.conn = conn
        self.ws = ws
        self._direct = False  # the last get_buffer() handed out the core's target

    def get_buffer(self, sizehint: int) -> memoryview:
        target = self.ws.core.read_target()
        self._direct = target is not None
        return target if target is not None else _READ

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct:
            self.ws.advanced(nbytes)
        else:
            self.ws.data_received(_READ[:nbytes])

    def eof_received(self) -> bool | None:
        return self.conn.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class WsSessions:
    """The reactor's open WebSocket sessions: lookup, pinning, the sweep and the drains."""

    def __init__(self, config: Config, on_change: Callable[[int], None]) -> None:
        self.config = config
        self.by_id: dict[int, WsConnection] = {}
        self.by_peer: dict[int, set[WsConnection]] = {}
        self.last_ping: dict[int, float] = {}
        self.retiring: dict[int, float] = {}  # peer key → when it was told to retire
        self.drain_at = 0.0  # when the server began to shut down (0: it has not)
        self.drain_code = GOING_AWAY
        self.on_change = on_change  # a session ended: a retiring worker may STOP now
        self.on_remove: Callable[[int], None] = lambda session: None  # its groups (push_hub)
        self.metrics: WebSocketMetrics | None = None
        self._timer: Cancellable | None = None
        self.clock = time.monotonic  # the tests put a fake clock and timer here
        self.call_later: Callable[[float, Callable[[], None]], Cancellable] | None = None

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, session: int) -> WsConnection | None:
        return self.by_id.get(session)

    def count(self, key: int) -> int:
        return len(self.by_peer.get(key, ()))

    def add(self, ws: WsConnection) -> None:
        self.by_id[ws.session] = ws
        self.by_peer.setdefault(ws.key, set()).add(ws)
        if self.metrics is not None:
            self.metrics.opened += 1
        self._schedule()

    def remove(self, ws: WsConnection, code: int) -> None:
        if self.by_id.pop(ws.session, None) is None:
            return
        self.last_ping.pop(ws.session, None)
        self.on_remove(ws.session)
        members = self.by_peer.get(ws.key)
        if members is not None:
            members.discard(ws)
            if not members:
                del self.by_peer[ws.key]
        if self.metrics is not None:
            self.metrics.closed(code)
        self.on_change(ws.key)

    # -- the sweep ------------------------------------------------------------------------

    def _interval(self) -> float:
        config = self.config
        parts = [1.0]
        if config.ws_ping_interval:
            parts += (config.ws_ping_interval / 2, config.ws_ping_timeout / 2)
        if self.retiring or self.drain_at:
            parts.append(max(0.05, min(config.ws_retire_drain, config.ws_stop_drain) / 4))
        return max(0.05, min(parts))

    def _schedule(self) -> None:
        if self._timer is None and self.by_id:
            call_later = self.call_later or asyncio.get_running_loop().call_later
            self._timer = call_later(self._interval(), self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self.clock()
        config = self.config
        for key, since in list(self.retiring.items()):
            if now - since >= config.ws_retire_drain:
                for ws in list(self.by_peer.get(key, ())):
                    ws.go_away(SERVICE_RESTART)
        if self.drain_at and now - self.drain_at >= self._drain_for():
            for ws in list(self.by_id.values()):
                ws.go_away(self.drain_code)
        for ws in list(self.by_id.values()):
            ws.tick(now, config)
        self._schedule()

    # -- life cycle -----------------------------------------------------------------------

    def retire(self, key: int) -> None:
        """The worker behind ``key`` retires: its sessions go on for --ws-drain-timeout."""
        self.retiring[key] = self.clock()  # also covers a handshake the app accepts later
        if self.by_peer.get(key):
            self._restart_timer()
            if self.config.ws_retire_drain == 0:
                self._sweep()

    def drain(self, code: int = GOING_AWAY) -> None:
        """The server shuts down (a base-mode worker: or retires): every session goes on for
        --ws-drain-timeout, then gets ``code`` (1001; 1012 for a retiring base-mode worker)."""
        if not self.drain_at:
            self.drain_at = self.clock()
            self.drain_code = code
            self._restart_timer()
            if self._drain_for() == 0 and self.by_id:
                self._sweep()

    def _drain_for(self) -> float:
        config = self.config
        return (
            config.ws_retire_drain if self.drain_code == SERVICE_RESTART else config.ws_stop_drain
        )

    def _restart_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._schedule()

    def peer_lost(self, key: int) -> None:
        """The worker died: 1011 to each of its sessions, now."""
        self.retiring.pop(key, None)
        for ws in list(self.by_peer.get(key, ())):
            ws.go_away(INTERNAL_ERROR, peer_alive=False)

    def close_all(self, code: int) -> None:
        for ws in list(self.by_id.values()):
            ws.go_away(code)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
