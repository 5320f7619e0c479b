"""The client side of a reactor: an asyncio.Protocol per client connection.

A thin shell: bytes go to the parser, complete requests go to the reactor,
response frames from workers come back through ``on_response_*`` and are
written out.  One request per connection is with a worker at a time; requests
pipelined behind it wait here, so responses leave in request order
(RFC 9112 §9.3.2) and no worker ever waits on a client.

Resource handling: the connection registers its session in the reactor's
table on ``connection_made`` and removes it in ``connection_lost``; that is
the only place a session disappears, so a late reply finds no session and is
dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, cast

from swserve.errors import ProtocolError
from swserve.ipc import framing
from swserve.ipc.codec import conn_prefix
from swserve.ipc.framing import Buffer
from swserve.protocol import serializer
from swserve.protocol.framing import absolute_form_host
from swserve.protocol.request import Request
from swserve.protocol.ws_handshake import (
    Upgrade,
    accept_response,
    check_upgrade,
    wants_websocket,
)
from swserve.reactor import spool
from swserve.reactor.spool import SpooledBody, failure_status
from swserve.reactor.ws_conn import WsConnection, WsPeer

if TYPE_CHECKING:
    from swserve.reactor.core import Reactor
    from swserve.reactor.dispatcher import WorkerSlot
    from swserve.reactor.h2_conn import H2Session
    from swserve.static.serve import FileSender

log = logging.getLogger("swserve.error")

# Complete requests queued per connection before we stop reading from it:
# enough for pipelining clients, bounded so one client cannot make us buffer.
MAX_PIPELINED = 16


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "_scheme",
        "accepted_at",
        "closing",
        "current",
        "dispatched_at",
        "error",
        "h2",
        "h2_sniff",
        "head_since",
        "last_active",
        "parser",
        "paused_since",
        "pending",
        "plan",
        "prefix",
        "reactor",
        "sender",
        "sent",
        "seq",
        "session",
        "slot",
        "slow_logged",
        "spooled",
        "started",
        "status",
        "submitted_at",
        "transport",
        "upgrade",
        "write_paused",
        "ws",
    )

    def __init__(self, reactor: Reactor, scheme: str = "http") -> None:
        self.reactor = reactor
        self.session = reactor.new_session_id()
        self.parser = reactor.make_parser()
        self.pending: collections.deque[Request] = collections.deque()
        self.current: Request | None = None
        self.slot: WorkerSlot | None = None  # the worker holding `current`, once dispatched
        self.seq = 0  # request id of `current` within this session
        self.started = False  # has the response to `current` started?
        self.dispatched_at = 0.0  # reactor clock when `current` went to a worker
        self.submitted_at = 0.0  # when `current` was complete and handed to the reactor
        self.head_since = 0.0  # when the first byte of an incomplete request head came
        self.paused_since = 0.0  # when the client's output buffer went over HIGH_WATER
        self.spooled: SpooledBody | None = None  # the current request's body file, if any
        self.slow_logged = False  # has --slowlog-timeout asked for its stack already?
        self.write_paused = False  # the client is behind: its worker was told BUFFER_FULL
        self.status = 0  # of the response being written, for the access log
        self.sent = 0  # body bytes of that response
        self.plan: serializer.ResponsePlan | None = None
        self.sender: FileSender | None = None  # streaming a file body (static/serve.py)
        self.error: ProtocolError | None = None
        self.closing = False
        self.last_active = reactor.now
        self.accepted_at = time.monotonic()
        self.prefix: list[bytes] = []
        self._scheme = scheme
        self.upgrade: Upgrade | None = None  # a valid WebSocket handshake, with the app
        self.ws: WsConnection | None = None  # after the switch: who gets the bytes
        self.h2: H2Session | None = None  # after the switch to HTTP/2 (reactor/h2_conn.py)
        # h2c prior knowledge: the first bytes, while they may still be the preface
        # (None: this connection cannot switch)
        self.h2_sniff: bytes | None = None

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
        self.reactor.sessions[self.session] = self
        if self.reactor.http2 is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                if ssl_object.selected_alpn_protocol() == "h2":
                    self.switch_to_http2(b"")
            elif self.reactor.http2.cleartext(client):
                self.h2_sniff = b""
        if self.reactor.metrics is not None:
            self.reactor.metrics.connections_accepted += 1

    # Output buffer watermarks: above HIGH the worker producing this connection's
    # response is told to wait (BUFFER_FULL); below LOW it may go on.  Swoole's
    # buffer_output_size is 2 MiB; 256 KiB keeps 10k slow clients under 2.5 GiB.
    HIGH_WATER = 256 * 1024
    LOW_WATER = 64 * 1024

    def pause_writing(self) -> None:
        if self.ws is not None:
            self.ws.pause_writing()
            return
        self.write_paused = True
        self.paused_since = self.reactor.now
        if self.h2 is not None:
            self.h2.pause_writing()
            return
        if self.sender is None:  # a file being sent has no producer to hold
            self._tell_worker(framing.BUFFER_FULL)

    def resume_writing(self) -> None:
        if self.ws is not None:
            self.ws.resume_writing()
            return
        self.write_paused = False
        if self.sender is not None:
            self.sender.resume()
            return
        if self.h2 is not None:
            self.h2.resume_writing()
            return
        self._tell_worker(framing.BUFFER_EMPTY)

    def _tell_worker(self, kind: int) -> None:
        self.reactor.flow(self, kind)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if ws is not None:  # switched: the bytes are the WebSocket's
            ws.data_received(data)
            return
        if self.h2 is not None:  # switched: the bytes are HTTP/2's
            self.h2.data_received(data)
            return
        if self.h2_sniff is not None:
            data = self._sniff_preface(data)
            if not data:
                return
        if self.closing or self.error is not None:
            return
        self.last_active = self.reactor.now
        try:
            requests = self.parser.feed(data)
        except ProtocolError as exc:
            requests = exc.completed
            self.error = exc
            self.transport.pause_reading()
            # debug, not warning: scanners and broken clients send this all day long,
            # and a client error is not the operator's problem (the client gets its 4xx)
            peer = self.transport.get_extra_info("peername")
            client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a unix socket"
            log.debug("bad request from %s: %s (answering %d)", client, exc.reason, exc.status_hint)
        except OSError as exc:  # a spooled body's write (reactor/spool.py): a full disk
            requests = []
            self.spool_failed(exc)
        if self.reactor.config.body_spool_size:
            requests = self._spool(requests)
        # --header-timeout runs from the first byte of a head until the head is complete
        if self.parser.head_pending is not None or requests:
            self.head_since = 0.0
        elif self.current is None and not self.head_since:
            self.head_since = time.monotonic()  # exact: the sweep clock may be 1 s stale
        pending = self.pending
        for req in requests:
            pending.append(req)
            if not req.keep_alive:
                # nothing after a non-persistent request is read (RFC 9112 §9.6)
                self.transport.pause_reading()
                self.closing = True
                break
        if len(pending) >= MAX_PIPELINED:
            self.transport.pause_reading()
        if self.current is None:
            self._next()
        else:
            self._maybe_continue()

    def _spool(self, requests: list[Request]) -> list[Request]:
        """Finish the complete bodies' files; move a body past --body-spool-size to one.

        A file that cannot be written fails its own request (and those after
        it on this connection): → the requests that can go on.
        """
        for i, req in enumerate(requests):
            body: object = req.body
            if isinstance(body, SpooledBody):
                try:
                    body.finish()
                except OSError as exc:
                    for later in requests[i:]:
                        spooled: object = later.body
                        if isinstance(spooled, SpooledBody):
                            spooled.discard()
                    self.spool_failed(exc)
                    return requests[:i]
                spool.EPISODE.ok()
        head = self.parser.head_pending
        if (
            head is not None
            and self.error is None
            and type(head.body) is bytearray
            and len(head.body) > self.reactor.config.body_spool_size
        ):
            try:
                head.body = SpooledBody(head.body)  # see spool.py
            except OSError as exc:
                self.spool_failed(exc)
        return requests

    def spool_failed(self, exc: OSError) -> None:
        """The upload's body file failed: answer it 507 (disk full) or 503, after what precedes."""
        head = self.parser.head_pending
        body: object = head.body if head is not None else None
        if isinstance(body, SpooledBody):
            body.discard()  # free the space now
        status = failure_status(exc)
        spool.EPISODE.failed(exc, status)
        self.error = ProtocolError(status, f"the request body could not be spooled: {exc}")
        self.transport.pause_reading()

    def _sniff_preface(self, data: bytes) -> bytes:
        """h2c prior knowledge: does the connection open with HTTP/2's preface?  → the
        bytes for the HTTP/1.1 parser (none once it switched, or while undecided)."""
        from swserve.protocol.http2 import PREFACE

        seen = (self.h2_sniff or b"") + data
        if PREFACE.startswith(seen[: len(PREFACE)]):
            if len(seen) < len(PREFACE):
                self.h2_sniff = seen
                return b""
            self.h2_sniff = None
            self.switch_to_http2(seen)
            return b""
        self.h2_sniff = None  # HTTP/1.1: never asked again on this connection
        return seen

    def switch_to_http2(self, data: bytes, upgrade: tuple[bytes, Request] | None = None) -> None:
        """From here on every byte is HTTP/2's (reactor/h2_conn.py)."""
        from swserve.protocol.http2 import Http2Core
        from swserve.reactor.h2_conn import H2Session, limits_of, spool

        config = self.reactor.config
        core = Http2Core(limits_of(config), spool_size=config.body_spool_size, spool=spool)
        self.h2 = H2Session(self, core)
        self.h2.start(data, upgrade)

    def _h2c_upgrade(self, req: Request) -> bool:
        """``Upgrade: h2c`` with one HTTP2-Settings (RFC 7540 §3.2), on cleartext, from a
        peer --http2-cleartext allows: 101, and the request becomes stream 1."""
        gate = self.reactor.http2
        upgrade = [v for n, v in req.headers if n == b"upgrade"]
        if not upgrade or upgrade[0].strip().lower() != b"h2c" or gate is None:
            return False
        settings = [v for n, v in req.headers if n == b"http2-settings"]
        if len(settings) != 1 or self.transport.get_extra_info("ssl_object") is not None:
            return False
        if not gate.cleartext(self.transport.get_extra_info("peername")):
            return False
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"
        )
        hop = (b"upgrade", b"http2-settings", b"connection")
        req.headers = [(n, v) for n, v in req.headers if n not in hop]
        req.version = b"2"
        self.current = None
        self.pending.clear()
        self.seq += 1
        self.switch_to_http2(b"", (settings[0], req))
        self.transport.resume_reading()
        return True

    def eof_received(self) -> bool | None:
        # A client that closes its side has gone away, as nginx and uvicorn also
        # assume: its request is abandoned (the app sees http.disconnect).
        if self.ws is not None:
            self.ws.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.reactor.sessions.pop(self.session, None)
        if self.ws is not None:
            self.ws.connection_lost()
        if self.sender is not None:
            self.sender.close()
        if self.h2 is not None:
            self.h2.connection_lost()
        if self.current is not None:
            self.reactor.abandon(self)
            self.current = None
        for req in (self.parser.head_pending, *self.pending):
            body: object = req.body if req is not None else None
            if isinstance(body, SpooledBody):
                body.discard()  # never dispatched: nobody else will remove its file
        if self.spooled is not None:
            self.spooled.discard()
        self.pending.clear()
        self.reactor.check_idle()
        if self.reactor.on_connection_closed is not None:
            self.reactor.on_connection_closed()

    # -- request flow -----------------------------------------------------------------

    def _next(self) -> None:
        """Hand the next queued request to the reactor, or finish the connection."""
        if self.pending:
            req = self.pending.popleft()
            if req.target[:1] != b"/":
                host = absolute_form_host(req.target)
                if host is not None:  # RFC 9112 §3.2.2: the target's host wins
                    req.headers = [(n, v) for n, v in req.headers if n != b"host"]
                    req.headers.append((b"host", host))
            self.current = req
            self.seq += 1
            self.started = False
            self.slot = None
            if self.reactor.metrics is not None:
                self.submitted_at = time.monotonic()
            if self.reactor.http2 is not None and self._h2c_upgrade(req):
                return
            if self.reactor.websockets and wants_websocket(req):
                checked = check_upgrade(req)
                if isinstance(checked, int):  # 400, or 426 naming the version we speak
                    extra = b"sec-websocket-version: 13\r\n" if checked == 426 else b""
                    self.write_error(checked, extra=extra)
                    self.current = None
                    return
                self.upgrade = checked
                self.reactor.submit(self)
                # read on, to see the client leave during the handshake (nothing it sends
                # before the 101 is parsed: RFC 6455 §4.1 forbids that anyway)
                self.transport.resume_reading()
                return
            static = self.reactor.static  # --static: answered here, no worker (static/)
            if static is None or not static.serve(self):
                self.reactor.submit(self)
            if len(self.pending) < MAX_PIPELINED // 2 and self.error is None and not self.closing:
                self.transport.resume_reading()
            return
        if self.error is not None:
            self.write_error(self.error.status_hint)
            return
        if self.closing:
            self.transport.close()
            return
        self._maybe_continue()

    def _maybe_continue(self) -> None:
        # RFC 9110 §10.1.1: a server that will read the body "ought to send" 100
        # (Continue).  Only when no other response is on the wire before it.
        head = self.parser.head_pending
        if head is not None and head.expect_continue and self.current is None and not self.pending:
            head.expect_continue = False
            self.transport.write(serializer.CONTINUE)

    def write_error(self, status: int, retry_after: int = 0, extra: bytes = b"") -> None:
        """Answer the current state with an error and close (framing is in doubt)."""
        self.closing = True
        if not self.transport.is_closing():
            date_server = self.reactor.date_server + extra
            if retry_after:
                date_server += b"retry-after: %d\r\n" % retry_after
            self.transport.write(serializer.error_response(status, date_server))
            self.transport.close()
            self._observe(status, 0)

    # -- responses from the worker -------------------------------------------------------

    def on_response_start(
        self, status: int, flags: int, headers: bytes, body: Buffer, end: bool
    ) -> None:
        req = self.current
        assert req is not None
        plan = serializer.plan_response(
            req, status, flags, shutting_down=self.reactor.no_keep_alive
        )
        self.plan = plan
        self.started = True
        self.status = status
        self.sent = len(body) if plan.body_allowed else 0
        head = serializer.response_head(req, status, flags, headers, plan, self.reactor.date_server)
        transport = self.transport
        if not plan.body_allowed:
            transport.write(head)
        elif plan.chunked:
            parts: list[Buffer] = [head]
            if body:
                parts += serializer.chunk(body)
            if end:
                parts.append(serializer.LAST_CHUNK)
            transport.writelines(parts)
        elif body:
            transport.writelines((head, body))
        else:
            transport.write(head)
        if end:
            self._finish()

    def on_response_body(self, body: Buffer, end: bool) -> None:
        plan = self.plan
        assert plan is not None
        if plan.body_allowed:
            self.sent += len(body)
            if plan.chunked:
                parts = serializer.chunk(body) if body else []
                if end:
                    parts.append(serializer.LAST_CHUNK)
                self.transport.writelines(parts)
            elif body:
                self.transport.write(body)
        if end:
            self._finish()

    def switch_to_websocket(self, subprotocol: str | None, headers: bytes, peer: WsPeer) -> None:
        """The app accepted: send the 101, then hand every byte that follows to a
        WebSocket connection (the protocol switch)."""
        upgrade = self.upgrade
        assert upgrade is not None
        assert self.current is not None
        # deferred: a server whose clients never upgrade never imports the websockets package
        from swserve.protocol.websocket import WebSocketCore, negotiate

        reactor = self.reactor
        config = reactor.config
        extensions, running = negotiate(upgrade.extensions, config.ws_per_message_deflate)
        self.transport.write(
            accept_response(upgrade, subprotocol, headers, extensions, reactor.date_server)
        )
        ws = WsConnection(self, WebSocketCore(config.ws_max_size, running), peer, reactor.ws)
        self.ws = ws
        self.upgrade = None
        self.status = 101
        if reactor.metrics is not None:
            self._observe(101, 0)
        self.current = None
        self.plan = None
        self.pending.clear()
        reactor.ws.add(ws)
        self.transport.resume_reading()

    def on_response_abort(self) -> None:
        """The app failed after its response started: the only honest signal is a close."""
        self.cut()

    def cut(self) -> None:
        """End a response that has started, short: close the connection (its framing is broken)."""
        self._observe(self.status, self.sent)
        self.current = None
        self.closing = True
        self.transport.close()

    def on_worker_lost(self) -> None:
        """The worker holding our request died."""
        if self.started:
            self.cut()
        else:
            self.write_error(502)
            self.current = None

    def _observe(self, status: int, sent: int) -> None:
        """Count the request that ends now (``current``, or one that never parsed) in /metrics."""
        metrics = self.reactor.metrics
        if metrics is None:
            return
        req = self.current
        if req is None:
            metrics.observe(b"", status, 0.0, 0, sent)
        else:
            duration = time.monotonic() - self.submitted_at
            metrics.observe(req.method, status, duration, len(req.body), sent)

    def _finish(self) -> None:
        self._record()
        plan = self.plan
        self.current = None
        self.plan = None
        self.slot = None
        self.last_active = self.reactor.now
        if plan is not None and not plan.keep_alive:
            self.closing = True
            self.pending.clear()
            self.transport.close()
            return
        self._next()

    def _record(self) -> None:
        """The exchange that ends now: metrics, access log, its spooled body removed."""
        if self.reactor.metrics is not None:
            self._observe(self.status, self.sent)
        access = self.reactor.access_log
        if access is not None and self.current is not None:
            slot = self.slot
            access.write(
                self.current,
                self.prefix[1].decode() or "-",
                self.status,
                self.sent,
                time.monotonic() - self.dispatched_at,
                slot.worker_id if slot else 0,
                slot.pid if slot else 0,
                static=slot is None,
            )
        if self.spooled is not None:
            self.spooled.discard()
            self.spooled = None
