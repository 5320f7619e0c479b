"""HTTP/2 in the reactor: the connection shell after the protocol switch, and its streams.

:class:`H2Session` moves bytes between the client connection
(``HttpConnection``, which hands it every byte once it has switched) and the
sans-IO core (``protocol/http2.py``).  Each stream whose request is complete
becomes an :class:`H2Stream`: an exchange with its **own session id** in the
reactor's session table and request id 1, so the dispatcher, the queue, the
worker links and the timers treat it exactly like an HTTP/1.1 request: it goes
to an idle worker (the streams of one connection run on different workers in
parallel), its replies are routed by (session, request id) and dropped once it
is gone, ``--timeout`` answers it 504, a dead worker fails only it (502, or
RST_STREAM INTERNAL_ERROR once its response started).

Flow control is the back-pressure: a stream whose HTTP/2 window is shut with
more than ``HIGH`` bytes waiting tells its own worker BUFFER_FULL, and
BUFFER_EMPTY once the client's WINDOW_UPDATE lets it out; a connection whose
socket buffer is full tells all its streams' workers.

Resource handling: a stream leaves the session table when its response ends,
when it is reset, or when the connection is lost (its worker then gets
DISCONNECT, a queued request is dropped); the connection closes after GOAWAY
once the core has nothing left to send.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from h2.errors import ErrorCodes

from swserve.ipc import framing
from swserve.ipc.framing import Buffer
from swserve.protocol import serializer
from swserve.protocol.http2 import (
    ConnectionEnded,
    Event,
    Http2Core,
    Limits,
    RequestReady,
    RequestRejected,
    StreamReset,
    WindowOpened,
)
from swserve.protocol.http2_fields import CONNECTION_HEADERS
from swserve.protocol.request import Request
from swserve.reactor.exchange import Exchange
from swserve.reactor.spool import SpooledBody

if TYPE_CHECKING:
    from swserve.config import Config
    from swserve.reactor.http_conn import HttpConnection

Headers = list[tuple[bytes, bytes]]

LINGER = 1.0  # seconds a connection ended by GOAWAY goes on reading before it closes


def limits_of(config: Config) -> Limits:
    return Limits(
        max_concurrent_streams=config.http2_max_concurrent_streams,
        # the decoded header list: what an HTTP/1.1 head may hold, at most 64 KiB
        max_header_list_size=min(
            64 * 1024, config.limit_request_fields * config.limit_request_field_size
        ),
        max_body_size=config.max_body_size,
        per_second=config.http2_max_resets,
    )


def header_lines(block: bytes, skip: frozenset[bytes] = CONNECTION_HEADERS) -> Headers:
    """``name: value\\r\\n`` lines (as the worker sends them) → HTTP/2 fields, lower-case,
    less the connection-specific ones HTTP/2 forbids (RFC 9113 §8.2.2)."""
    out: Headers = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name not in skip:
            out.append((name, value.strip()))
    return out


_date_server: tuple[bytes, Headers] = (b"", [])


def date_server_fields(block: bytes) -> Headers:
    """The reactor's cached Date/Server lines as fields (parsed once per second)."""
    global _date_server
    if _date_server[0] is not block:
        _date_server = (block, header_lines(block))
    return _date_server[1]


class H2Session:
    """The HTTP/2 side of one client connection."""

    __slots__ = ("conn", "core", "draining", "ended_at", "last_active", "streams")

    def __init__(self, conn: HttpConnection, core: Http2Core) -> None:
        self.conn = conn
        self.core = core
        self.streams: dict[int, H2Stream] = {}  # stream id → its exchange, while it has one
        self.draining = False
        self.last_active = conn.reactor.now
        self.ended_at = 0.0  # when a GOAWAY ended the connection (it lingers: _linger)

    def start(self, data: bytes, upgrade: tuple[bytes, Request] | None = None) -> None:
        if upgrade is not None:  # Upgrade: h2c: stream 1 is the request that asked
            self.core.start(upgrade[0])
            self.flush()
            self._ready(1, upgrade[1])
        else:
            self.core.start()
        self.data_received(data)

    def data_received(self, data: bytes) -> None:
        reactor = self.conn.reactor
        self.last_active = reactor.now
        if data:
            self._apply(self.core.receive(data, reactor.now))
        self.flush()

    def _apply(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, RequestReady):
                self._ready(ev.stream_id, ev.request)
            elif isinstance(ev, StreamReset):
                stream = self.streams.get(ev.stream_id)
                if stream is not None:
                    stream.reset_by_peer()
            elif isinstance(ev, WindowOpened):
                stream = self.streams.get(ev.stream_id)
                if stream is not None and stream.window_shut:
                    stream.window_shut = False
                    if not self.conn.write_paused:  # else: when the socket drains
                        stream.flow(framing.BUFFER_EMPTY)
            elif isinstance(ev, RequestRejected):
                self.answer(ev.stream_id, ev.status)
            elif isinstance(ev, ConnectionEnded):
                self._linger()

    def _linger(self) -> None:
        """After a GOAWAY that ends the connection: send it, half-close, and read (and
        drop) what the client still sends for a moment, so that closing with unread
        bytes (a TCP reset) does not destroy the GOAWAY before the client reads it."""
        self.flush()
        conn = self.conn
        conn.closing = True
        if not self.ended_at:
            self.ended_at = conn.reactor.now or 1e-9
            transport = conn.transport
            if transport.can_write_eof():
                transport.write_eof()

    def _ready(self, stream_id: int, req: Request) -> None:
        stream = H2Stream(self, stream_id, req)
        self.streams[stream_id] = stream
        reactor = self.conn.reactor
        reactor.sessions[stream.session] = stream
        reactor.h2_streams += 1
        static = reactor.static  # --static: answered here, no worker (static/serve.py)
        if static is not None and static.serve(stream):
            return
        reactor.submit(stream)
        if self.conn.write_paused and stream.slot is not None:
            reactor.flow(stream, framing.BUFFER_FULL)  # the client is behind already

    def answer(self, stream_id: int, status: int, retry_after: int = 0) -> None:
        """A small error response of the reactor's own on one stream."""
        body = serializer.error_response(status, b"").partition(b"\r\n\r\n")[2]
        headers: Headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        if retry_after:
            headers.append((b"retry-after", b"%d" % retry_after))
        headers += date_server_fields(self.conn.reactor.date_server)
        self.core.respond(stream_id, status, headers, end=False)
        self.core.send_body(stream_id, body, True, self.conn.reactor.now)
        self.flush()

    def flush(self) -> None:
        data = self.core.data_to_send()
        transport = self.conn.transport
        if data and not transport.is_closing():
            transport.write(data)
        if self.draining and not self.streams and self.core.quiet():
            self.conn.closing = True
            transport.close()

    def stream_done(self, stream: H2Stream) -> None:
        self.streams.pop(stream.stream_id, None)
        reactor = self.conn.reactor
        if reactor.sessions.pop(stream.session, None) is not None:
            reactor.h2_streams -= 1
        self.last_active = reactor.now
        self.flush()

    # -- connection events ----------------------------------------------------------

    def pause_writing(self) -> None:
        for stream in self.streams.values():
            stream.flow(framing.BUFFER_FULL)

    def resume_writing(self) -> None:
        for stream in list(self.streams.values()):  # a file sent to its end leaves the table
            if not stream.window_shut:
                stream.flow(framing.BUFFER_EMPTY)

    def connection_lost(self) -> None:
        for stream in list(self.streams.values()):
            stream.reset_by_peer()
        for req in self.core.arriving():
            body: object = req.body
            if isinstance(body, SpooledBody):
                body.discard()

    # -- timers and drain (the reactor's sweep) ---------------------------------------

    def sweep(self, now: float) -> None:
        conn = self.conn
        config = conn.reactor.config
        if self.ended_at:
            if now - self.ended_at >= LINGER:
                conn.transport.close()
            return
        if conn.write_paused and now - conn.paused_since >= config.write_timeout:
            conn.closing = True
            conn.transport.abort()  # the client stopped reading: its workers get DISCONNECT
            return
        self._apply(self.core.stalled(now, config.write_timeout))
        if now - self.last_active >= config.body_timeout and self.core.arriving():
            # requests whose bodies stopped coming (--body-timeout, as for HTTP/1.1)
            for stream_id in self.core.expire_arriving():
                self.answer(stream_id, 408)
        if not self.streams and self.core.quiet() and now - self.last_active >= config.keep_alive:
            self.drain()  # idle past --keep-alive: GOAWAY, then close
        self.flush()

    def drain(self) -> None:
        """GOAWAY with the last stream id: the streams before it finish, then we close."""
        self.draining = True
        self.core.goaway()
        self.flush()


class H2Stream(Exchange):
    """One stream's exchange, in the session table beside HTTP/1.1 connections.

    The same :class:`~swserve.reactor.exchange.Exchange` as a connection with
    one current request; its response goes to the HTTP/2 core instead of a
    transport of its own.
    """

    __slots__ = (
        "_current",
        "_sent",
        "_started",
        "h2session",
        "plan",
        "status",
        "stream_id",
        "window_shut",
    )

    def __init__(self, h2session: H2Session, stream_id: int, req: Request) -> None:
        owner = h2session.conn
        super().__init__(owner.reactor, owner.prefix)
        self.h2session = h2session
        self.stream_id = stream_id
        self.window_shut = False
        self._current: Request | None = req
        self._started = False
        self._sent = 0
        self.status = 0
        self.plan: serializer.ResponsePlan | None = None
        self.submitted_at = time.monotonic()
        self.transport = owner.transport  # for its peer's address (--dispatch ip)

    multiplexed = True

    def blocked(self) -> bool:
        return self.window_shut or self.h2session.conn.write_paused

    def flow(self, kind: int) -> None:
        """BUFFER_FULL / BUFFER_EMPTY: to the file being sent, else to the worker."""
        sender = self.sender
        if sender is None:
            self.reactor.flow(self, kind)
        elif kind == framing.BUFFER_EMPTY:
            sender.resume()

    @property
    def current(self) -> Request | None:
        return self._current

    @property
    def seq(self) -> int:
        return 1  # one request per stream

    @property
    def started(self) -> bool:
        return self._started

    @property
    def write_paused(self) -> bool:
        # the connection's socket buffer is the session's business (H2Session.sweep);
        # the reactor's sweep must not see a stream as a paused connection
        return False

    @property
    def sent(self) -> int:
        return self._sent

    @sent.setter
    def sent(self, value: int) -> None:
        self._sent = value

    # -- responses from the worker -----------------------------------------------------

    def on_response_start(
        self, status: int, flags: int, headers: bytes, body: Buffer, end: bool
    ) -> None:
        req = self.current
        assert req is not None
        h2session = self.h2session
        fields = header_lines(headers)
        date_server = date_server_fields(self.reactor.date_server)
        if flags & serializer.HAS_DATE:
            date_server = [f for f in date_server if f[0] != b"date"]
        if flags & serializer.HAS_SERVER:
            date_server = [f for f in date_server if f[0] != b"server"]
        fields += date_server
        body_allowed = req.method != b"HEAD" and status >= 200 and status not in (204, 304)
        self._started = True
        self.status = status
        self.plan = serializer.ResponsePlan(body_allowed, False, True)
        bare = end and (not body_allowed or not body)
        h2session.core.respond(self.stream_id, status, fields, end=bare)
        if not bare:
            self._send(body, end)
        h2session.flush()
        if end:
            self._finish()

    def on_response_body(self, body: Buffer, end: bool) -> None:
        plan = self.plan
        assert plan is not None
        if plan.body_allowed:
            self._send(body, end)
        elif end:
            self._send(b"", True)
        self.h2session.flush()
        if end:
            self._finish()

    def _send(self, body: Buffer, end: bool) -> None:
        assert self.plan is not None
        if not self.plan.body_allowed:
            body = b""
        self._sent += len(body)
        core = self.h2session.core
        blocked = core.send_body(self.stream_id, body, end, self.reactor.now)
        if blocked and not self.window_shut and not end:
            self.window_shut = True
            self.flow(framing.BUFFER_FULL)

    def cut(self) -> None:
        """A response that started ends short: RST_STREAM INTERNAL_ERROR (the stream only)."""
        self.observe(self._current, self.status, self._sent)
        self.h2session.core.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
        self._end()

    def fail(self, status: int, retry_after: int = 0) -> None:
        if self._started:
            self.cut()
            return
        self.h2session.answer(self.stream_id, status, retry_after)
        self.observe(self._current, status, 0)
        self._end()

    def _finish(self) -> None:
        self.record(self._current, self.status, self._sent)
        self._end()

    def reset_by_peer(self) -> None:
        """The client reset the stream, or left: abandon the request like a client that left."""
        req = self._current
        if req is not None:
            body: object = req.body
            if self.slot is None and isinstance(body, SpooledBody):
                body.discard()  # queued, never dispatched: nobody else removes its file
            self.reactor.abandon(self)
        self._end()

    def _end(self) -> None:
        if self.sender is not None:  # reset or cut mid-file: release the descriptor
            self.sender.close()
        if self.spooled is not None:
            self.spooled.discard()
            self.spooled = None
        self._current = None
        self.slot = None
        self.h2session.stream_done(self)
        self.reactor.check_idle()


def spool(body: bytearray) -> bytearray:
    """The core's spool hook: a SpooledBody stands in for the bytearray (reactor/spool.py)."""
    return cast(bytearray, SpooledBody(body))
