"""The client side of a reactor: an asyncio.Protocol per client connection.

A thin shell over the sans-IO HTTP/1.1 connection
(``protocol/h1_connection.py``), which owns the pipeline, 100-continue, the
keep-alive decision, the response framing, the deadlines and the protocol
switch.  This shell moves bytes between it and the transport, hands the
requests it makes ready to the reactor (or to ``--static``), counts the
exchanges that end, and, once the core switches, hands every byte to the next
protocol: a :class:`~swserve.reactor.ws_conn.WsConnection` or an
:class:`~swserve.reactor.h2_conn.H2Session`.

Resource handling: the connection registers its session in the reactor's
table on ``connection_made`` and removes it in ``connection_lost``; that is
the only place a session disappears, so a late reply finds no session and is
dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol, cast

from swserve.ipc import framing
from swserve.ipc.codec import conn_prefix
from swserve.ipc.framing import Buffer
from swserve.protocol.h1_connection import H1Connection
from swserve.protocol.h1_events import (
    Close,
    Ended,
    Event,
    ReadingOff,
    Rejected,
    RequestReady,
    Switch,
    Write,
)
from swserve.protocol.request import Request
from swserve.protocol.ws_handshake import Upgrade, accept_response
from swserve.reactor.exchange import Exchange
from swserve.reactor.spool import SpooledBody
from swserve.reactor.ws_conn import WsConnection, WsPeer, WsReader

if TYPE_CHECKING:
    from swserve.protocol.websocket import WebSocketCore
    from swserve.reactor.core import Reactor
    from swserve.reactor.h2_conn import H2Session

log = logging.getLogger("swserve.error")


class Upper(Protocol):
    """The protocol a connection switched to: it gets every byte from then on."""

    def data_received(self, data: bytes) -> None: ...


class HttpConnection(Exchange, asyncio.Protocol):
    __slots__ = ("_scheme", "_ws_next", "core", "h2", "upper", "ws")

    def __init__(self, reactor: Reactor, scheme: str = "http") -> None:
        super().__init__(reactor, [])
        self.core = H1Connection(
            reactor.make_parser(), reactor.h1, time.monotonic(), store=reactor.spool
        )
        self._scheme = scheme
        self.upper: Upper | None = None  # after the switch: who gets the bytes
        self.ws: WsConnection | None = None  # ... a WebSocket
        self.h2: H2Session | None = None  # ... or HTTP/2 (reactor/h2_conn.py)
        # the WebSocket's core and the worker's side of it, during the switch
        self._ws_next: tuple[WebSocketCore, WsPeer] | None = None

    # -- the core's state, for the reactor ---------------------------------------------

    @property
    def current(self) -> Request | None:
        return self.core.current

    @property
    def seq(self) -> int:
        return self.core.seq

    @property
    def started(self) -> bool:
        return self.core.started

    @property
    def write_paused(self) -> bool:
        return self.core.write_paused

    @property
    def paused_since(self) -> float:
        return self.core.paused_since

    @property
    def accepted_at(self) -> float:
        return self.core.accepted_at

    @property
    def upgrade(self) -> Upgrade | None:
        return self.core.upgrade

    @property
    def closing(self) -> bool:
        return self.core.closing

    @closing.setter
    def closing(self, value: bool) -> None:
        self.core.closing = value

    @property
    def sent(self) -> int:
        return self.core.sent

    @sent.setter
    def sent(self, value: int) -> None:
        self.core.sent = value  # a file body sent by the kernel (static/serve.py)

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        client = transport.get_extra_info("peername")
        server = transport.get_extra_info("sockname")
        self.prefix = conn_prefix(
            self._scheme,
            client if isinstance(client, tuple) else None,
            server if isinstance(server, tuple) else None,
        )
        self.transport.set_write_buffer_limits(high=self.HIGH_WATER, low=self.LOW_WATER)
        reactor = self.reactor
        reactor.sessions[self.session] = self
        if reactor.http2 is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                if ssl_object.selected_alpn_protocol() == "h2":
                    self._apply(self.core.switch("h2"))
            elif reactor.http2.cleartext(client):
                self.core.allow_h2c()
        if reactor.metrics is not None:
            reactor.metrics.connections_accepted += 1

    def pause_writing(self) -> None:
        if self.ws is not None:
            self.ws.pause_writing()
            return
        self.core.pause_writing(self.reactor.now)
        if self.h2 is not None:
            self.h2.pause_writing()
            return
        if self.sender is None:  # a file being sent has no producer to hold
            self.reactor.flow(self, framing.BUFFER_FULL)

    def resume_writing(self) -> None:
        if self.ws is not None:
            self.ws.resume_writing()
            return
        self.core.resume_writing()
        if self.sender is not None:
            self.sender.resume()
            return
        if self.h2 is not None:
            self.h2.resume_writing()
            return
        self.reactor.flow(self, framing.BUFFER_EMPTY)

    def data_received(self, data: bytes) -> None:
        upper = self.upper
        if upper is not None:  # switched: the bytes are the next protocol's
            upper.data_received(data)
            return
        events = self.core.receive(data, time.monotonic())
        if events:
            self._apply(events)

    def eof_received(self) -> bool | None:
        # A client that closes its side has gone away, as nginx and uvicorn also
        # assume: its request is abandoned (the app sees http.disconnect).
        if self.ws is not None:
            self.ws.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        reactor = self.reactor
        reactor.sessions.pop(self.session, None)
        if self.ws is not None:
            self.ws.connection_lost()
        if self.sender is not None:
            self.sender.close()
        if self.h2 is not None:
            self.h2.connection_lost()
        if self.core.current is not None:
            reactor.abandon(self)
        for req in self.core.connection_lost():
            body: object = req.body
            if isinstance(body, SpooledBody):
                body.discard()  # never dispatched: nobody else will remove its file
        if self.spooled is not None:
            self.spooled.discard()
        reactor.check_idle()
        if reactor.on_connection_closed is not None:
            reactor.on_connection_closed()

    # -- the core's events ---------------------------------------------------------------

    def _apply(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is Write:
                data = ev.data
                if len(data) == 1:
                    self.transport.write(data[0])
                else:
                    self.transport.writelines(data)
            elif type(ev) is RequestReady:  # always the last event
                self._ready()
            elif type(ev) is Ended:
                if ev.complete:
                    reactor = self.reactor
                    if (
                        reactor.metrics is not None
                        or reactor.access_log is not None
                        or self.spooled is not None
                    ):
                        self.record(ev.request, ev.status, ev.sent)
                    self.slot = None
                elif self.reactor.metrics is not None:
                    self.observe(ev.request, ev.status, ev.sent)
            elif type(ev) is ReadingOff:
                if ev.on:
                    self.transport.pause_reading()
                else:
                    self.transport.resume_reading()
            elif type(ev) is Close:
                if ev.abort:
                    self.transport.abort()  # the client stopped reading: its worker gets DISCONNECT
                else:
                    self.transport.close()
            elif type(ev) is Switch:
                self._switch(ev)
            elif type(ev) is Rejected:
                # debug, not warning: scanners and broken clients send this all day long,
                # and a client error is not the operator's problem (the client gets its 4xx)
                exc = ev.error
                peer = self.transport.get_extra_info("peername")
                client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a unix socket"
                log.debug(
                    "bad request from %s: %s (answering %d)", client, exc.reason, exc.status_hint
                )

    def _ready(self) -> None:
        """The core made a request current: to ``--static``, or to a worker."""
        reactor = self.reactor
        self.slot = None
        if reactor.metrics is not None:
            self.submitted_at = time.monotonic()
        static = reactor.static  # --static: answered here, no worker (static/)
        if static is None or self.core.upgrade is not None or not static.serve(self):
            reactor.submit(self)

    def _switch(self, ev: Switch) -> None:
        """The protocol switch: from here on every byte is the next protocol's."""
        if ev.protocol == "websocket":
            assert self._ws_next is not None
            assert ev.request is not None
            core, peer = self._ws_next
            self._ws_next = None
            reactor = self.reactor
            ws = WsConnection(self, ev.request, core, peer, reactor.ws)
            self.ws = ws
            self.upper = ws
            reactor.ws.add(ws)
            if self.transport.get_extra_info("ssl_object") is None:
                self.transport.set_protocol(WsReader(self, ws))  # reads into a shared buffer
        else:  # "h2" (prior knowledge, ALPN) or "h2c" (Upgrade: its request is stream 1)
            upgrade = (ev.settings, ev.request) if ev.request is not None else None
            self.switch_to_http2(upgrade)
        if ev.data:
            assert self.upper is not None
            self.upper.data_received(ev.data)

    def switch_to_http2(self, upgrade: tuple[bytes, Request] | None = None) -> None:
        from swserve.protocol.http2 import Http2Core
        from swserve.reactor.h2_conn import H2Session, limits_of, spool

        config = self.reactor.config
        core = Http2Core(limits_of(config), spool_size=config.body_spool_size, spool=spool)
        self.h2 = self.upper = H2Session(self, core)
        self.h2.start(b"", upgrade)

    def switch_to_websocket(self, subprotocol: str | None, headers: bytes, peer: WsPeer) -> None:
        """The app accepted: send the 101, then hand every byte that follows to a
        WebSocket connection (the protocol switch)."""
        upgrade = self.core.upgrade
        assert upgrade is not None
        # deferred: a server whose clients never upgrade never imports the websockets package
        from swserve.protocol.websocket import WebSocketCore, negotiate

        reactor = self.reactor
        config = reactor.config
        extensions, running = negotiate(upgrade.extensions, config.ws_per_message_deflate)
        response = accept_response(upgrade, subprotocol, headers, extensions, reactor.date_server)
        self._ws_next = (WebSocketCore(config.ws_max_size, running), peer)
        self._apply(self.core.accept_upgrade(response))

    # -- responses from the worker -------------------------------------------------------

    def on_response_start(
        self, status: int, flags: int, headers: bytes, body: Buffer, end: bool
    ) -> None:
        reactor = self.reactor
        self._apply(
            self.core.respond(status, flags, headers, body, end, reactor.now, reactor.no_keep_alive)
        )

    def on_response_body(self, body: Buffer, end: bool) -> None:
        events = self.core.send_body(body, end, self.reactor.now)
        if events:
            self._apply(events)

    def cut(self) -> None:
        """End a response that has started, short: close the connection (its framing is broken)."""
        self._apply(self.core.cut())

    def fail(self, status: int, retry_after: int = 0) -> None:
        self._apply(self.core.fail(status, retry_after))

    def close(self) -> None:
        """Close once what is written has gone (idle, or draining)."""
        self._apply(self.core.close())

    # -- the sweep and the drain ------------------------------------------------------------

    def sweep(self, now: float) -> bool:
        if self.ws is not None:
            return True  # a WebSocket session: its own sweep (reactor/ws_conn.py)
        if self.h2 is not None:
            self.h2.sweep(now)  # HTTP/2: stalled streams, idle, write timeout
            return True
        events = self.core.expire(now)
        if events:
            self._apply(events)
            return True
        return False

    def drain_idle(self, now: float, grace: float) -> None:
        if self.ws is not None:
            return  # closed by the WebSocket drain (reactor/ws_conn.py)
        if self.h2 is not None:
            self.h2.drain()  # GOAWAY: its streams finish, then it closes
            return
        if self.core.idle() and not self.fresh(now, grace):
            self.close()

    def fresh(self, now: float, grace: float) -> bool:
        return self.core.fresh() and now - self.core.accepted_at < grace
