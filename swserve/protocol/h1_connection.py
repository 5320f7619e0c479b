"""The HTTP/1.1 server side of one client connection, sans-IO.

Bytes and the time go in (:meth:`H1Connection.receive`), responses from the
app go in (:meth:`respond`, :meth:`send_body`), the clock goes in
(:meth:`expire`); events come out, in the order the shell must act on them:

===================  ===========================================================
event                the shell ...
===================  ===========================================================
:class:`Write`       writes these buffers
:class:`ReadingOff`  pauses reading (``PAUSE``), or resumes it (``RESUME``)
:class:`Close`       closes after what was written (``CLOSE``), or aborts (``ABORT``)
:class:`Rejected`    may log a client's bad request (its answer follows, in order)
:class:`Ended`       counts an exchange that ended (metrics, access log)
:class:`RequestReady`  hands ``current`` to whoever answers it
:class:`Switch`      hands every later byte, ``data`` first, to the next protocol
===================  ===========================================================

:class:`RequestReady` is always the last event of a list: the shell may be
called back (a response that comes at once, in base mode) while it handles
it, and the events of that call never overtake those of this one.

What it owns: the pipeline (requests parsed while another is answered wait
in ``pending``, so responses leave in request order: RFC 9112 §9.3.2), the
request being answered (``current``, numbered ``seq``), 100 (Continue), an
error found after complete requests (answered after them), the keep-alive
decision and the framing of the response (``protocol/serializer.py``), the
header/body/idle/write deadlines, and the protocol switch: a WebSocket
handshake the app accepts, ``Upgrade: h2c``, and h2c with prior knowledge.
Bytes a client sends after its upgrade request are held and handed to the
next protocol on the switch (h11's ``trailing_data``); if the app answers the
upgrade request with a plain response, the connection closes after it (both
parsers treat an upgrade request as not persistent) and they are dropped.

It reads no clock, opens nothing, and imports neither asyncio nor socket.
"""

from __future__ import annotations

import collections
from typing import Final

from swserve.errors import ProtocolError
from swserve.protocol import serializer
from swserve.protocol.h1_events import (
    ABORT,
    CLOSE,
    PAUSE,
    RESUME,
    BodyStore,
    Buffer,
    Ended,
    Event,
    Rejected,
    RequestReady,
    Settings,
    Switch,
    Write,
)
from swserve.protocol.head_checks import absolute_form_host
from swserve.protocol.parser import Parser
from swserve.protocol.request import Request
from swserve.protocol.ws_handshake import Upgrade, check_upgrade, wants_websocket

# Complete requests queued per connection before we stop reading from it:
# enough for pipelining clients, bounded so one client cannot make us buffer.
MAX_PIPELINED: Final = 16
# Bytes held while an upgrade request waits for the app's answer (more: stop reading).
MAX_HELD: Final = 64 * 1024
H2C_ACCEPT: Final = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"
)
# HTTP/2's connection preface (RFC 9113 §3.4), for h2c with prior knowledge
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# -- the connection ------------------------------------------------------------------------


class H1Connection:
    __slots__ = (
        "accepted_at",
        "closed",
        "closing",
        "current",
        "error",
        "h2_sniff",
        "h2c",
        "head_since",
        "held",
        "last_active",
        "parser",
        "paused_since",
        "pending",
        "plan",
        "reading",
        "sent",
        "seq",
        "settings",
        "started",
        "status",
        "store",
        "switched",
        "upgrade",
        "write_paused",
    )

    def __init__(
        self,
        parser: Parser,
        settings: Settings,
        now: float,
        *,
        h2c: bool = False,
        store: BodyStore | None = None,
    ) -> None:
        self.parser = parser
        self.settings = settings
        self.store = store
        self.pending: collections.deque[Request] = collections.deque()
        self.current: Request | None = None
        self.seq = 0  # request id of ``current`` (1, 2, ... on this connection)
        self.started = False  # has the response to ``current`` started?
        self.plan: serializer.ResponsePlan | None = None
        self.status = 0  # of the response being written
        self.sent = 0  # its body bytes so far
        self.error: ProtocolError | None = None  # answered once what precedes it is
        self.closing = False  # nothing more is read or answered after what is queued
        self.closed = False  # told to close (or lost): no more output
        self.reading = True
        self.accepted_at = now
        self.last_active = now
        self.head_since = 0.0  # the first byte of an incomplete head (--header-timeout)
        self.write_paused = False  # the client is behind (the shell's buffer is full)
        self.paused_since = 0.0
        self.upgrade: Upgrade | None = None  # ``current`` is a valid WebSocket handshake
        self.held = b""  # bytes after an upgrade request, until the app answers it
        self.h2c = h2c  # may this connection switch to cleartext HTTP/2?
        # h2c prior knowledge: the first bytes while they may still be the preface
        self.h2_sniff: bytes | None = b"" if h2c else None
        self.switched = ""  # the protocol every byte now belongs to

    # -- bytes in ------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """The client sent ``data`` (``b""``: it closed its side)."""
        out: list[Event] = []
        if self.h2_sniff is not None:
            data = self._sniff(data, out)
            if not data:
                return out
        if self.upgrade is not None and self.current is not None:
            self._hold(data, out)
            return out
        if self.closing or self.error is not None or self.switched:
            return out
        self.last_active = now
        parser = self.parser
        try:
            requests = parser.feed(data)
        except ProtocolError as exc:
            requests = exc.completed
            self._reject(exc, out)
        except OSError as exc:  # a stored body's write failed (a full disk)
            requests = []
            self._store_failed(exc, out)
        if self.store is not None:
            self._settle(requests, out)
        # --header-timeout runs from the first byte of a head until the head is complete
        if parser.head_pending is not None or requests:
            self.head_since = 0.0
        elif self.current is None and not self.head_since and data:
            self.head_since = now
        pending = self.pending
        for req in requests:
            pending.append(req)
            if not req.keep_alive:
                # nothing after a non-persistent request is read (RFC 9112 §9.6)
                self.closing = True
                self._reading(False, out)
                break
        if len(pending) >= MAX_PIPELINED:
            self._reading(False, out)
        if self.current is None:
            self._next(out)
        else:
            self._continue(out)
        return out

    def _store_failed(self, exc: OSError, out: list[Event]) -> None:
        if self.store is None:
            raise exc
        self._reject(self.store.failed(exc, self.parser.head_pending), out, bad=False)

    def _settle(self, requests: list[Request], out: list[Event]) -> None:
        assert self.store is not None
        head = self.parser.head_pending if self.error is None else None
        failure = self.store.settle(requests, head)
        if failure is not None:
            self._reject(failure, out, bad=False)

    def _reject(self, exc: ProtocolError, out: list[Event], bad: bool = True) -> None:
        """Answer ``exc`` after the requests before it (``bad``: the client's fault)."""
        self.error = exc
        self._reading(False, out)
        if bad:
            out.append(Rejected(exc))

    def _hold(self, data: bytes, out: list[Event]) -> None:
        """Bytes after an upgrade request: the next protocol's, or the next request's."""
        self.held += data
        if len(self.held) > MAX_HELD:
            self._reading(False, out)

    def _sniff(self, data: bytes, out: list[Event]) -> bytes:
        """h2c with prior knowledge: does the connection open with the preface?  → the
        bytes for HTTP/1.1 (none once it switched, or while undecided)."""
        if not data:
            return b""
        seen = (self.h2_sniff or b"") + data
        if PREFACE.startswith(seen[: len(PREFACE)]):
            if len(seen) < len(PREFACE):
                self.h2_sniff = seen
                return b""
            self.h2_sniff = None
            self.switched = "h2"
            out.append(Switch("h2", seen))
            return b""
        self.h2_sniff = None  # HTTP/1.1: never asked again on this connection
        return seen

    def allow_h2c(self) -> None:
        """This connection may become cleartext HTTP/2 (prior knowledge, or Upgrade)."""
        self.h2c = True
        if self.seq == 0 and self.h2_sniff is None and not self.head_since:
            self.h2_sniff = b""

    def switch(self, protocol: str) -> list[Event]:
        """Switch before the first byte (TLS chose ``protocol`` by ALPN)."""
        self.h2_sniff = None
        self.switched = protocol
        return [Switch(protocol, b"")]

    def _reading(self, on: bool, out: list[Event]) -> None:
        if self.reading != on:
            self.reading = on
            out.append(RESUME if on else PAUSE)

    # -- the pipeline --------------------------------------------------------------------

    def _next(self, out: list[Event]) -> None:
        """Make the next queued request current, or finish the connection."""
        if not self.pending:
            if self.error is not None:
                self._error(self.error.status_hint, b"", out)
            elif self.closing:
                self._close(out)
            else:
                self._continue(out)
            return
        req = self.pending.popleft()
        if req.target[:1] != b"/":
            host = absolute_form_host(req.target)
            if host is not None:  # RFC 9112 §3.2.2: the target's host wins
                req.headers = [(n, v) for n, v in req.headers if n != b"host"]
                req.headers.append((b"host", host))
        self.current = req
        self.seq += 1
        self.started = False
        if self.h2c and self._h2c_upgrade(req, out):
            return
        if self.settings.websocket and wants_websocket(req):
            checked = check_upgrade(req)
            if isinstance(checked, int):  # 400, or 426 naming the version we speak
                extra = b"sec-websocket-version: 13\r\n" if checked == 426 else b""
                self.fail(checked, extra=extra, out=out)
                return
            self.upgrade = checked
            # read on, to see the client leave during the handshake (what it sends is
            # held: RFC 6455 §4.1 has it wait for the 101)
            self._reading(True, out)
        elif (
            not self.reading
            and len(self.pending) < MAX_PIPELINED // 2
            and self.error is None
            and not self.closing
        ):
            self._reading(True, out)
        out.append(RequestReady(req, self.seq))

    def _h2c_upgrade(self, req: Request, out: list[Event]) -> bool:
        """``Upgrade: h2c`` with one HTTP2-Settings (RFC 7540 §3.2): 101, and the request
        becomes stream 1 of HTTP/2."""
        upgrade = [v for n, v in req.headers if n == b"upgrade"]
        if not upgrade or upgrade[0].strip().lower() != b"h2c":
            return False
        settings = [v for n, v in req.headers if n == b"http2-settings"]
        if len(settings) != 1:
            return False
        hop = (b"upgrade", b"http2-settings", b"connection")
        req.headers = [(n, v) for n, v in req.headers if n not in hop]
        req.version = b"2"
        self.current = None
        self.pending.clear()
        self.switched = "h2c"
        out.append(Write([H2C_ACCEPT]))
        self._reading(True, out)
        out.append(Switch("h2c", b"", req, settings[0]))
        return True

    def _continue(self, out: list[Event]) -> None:
        # RFC 9110 §10.1.1: a server that will read the body "ought to send" 100
        # (Continue).  Only when no other response is on the wire before it.
        head = self.parser.head_pending
        if head is not None and head.expect_continue and self.current is None and not self.pending:
            head.expect_continue = False
            out.append(Write([serializer.CONTINUE]))

    # -- the response ----------------------------------------------------------------------

    def respond(
        self,
        status: int,
        flags: int,
        headers: bytes,
        body: Buffer,
        end: bool,
        now: float,
        no_keep_alive: bool = False,
    ) -> list[Event]:
        """The response to ``current`` starts (``flags``: serializer.HAS_*, APP_CLOSE)."""
        req = self.current
        assert req is not None
        plan = serializer.plan_response(req, status, flags, shutting_down=no_keep_alive)
        self.plan = plan
        self.started = True
        self.status = status
        head = serializer.response_head(
            req, status, flags, headers, plan, self.settings.date_server
        )
        parts: list[Buffer] = [head]
        self.sent = 0
        if plan.body_allowed:
            self.sent = len(body)
            if plan.chunked:
                if body:
                    parts += serializer.chunk(body)
                if end:
                    parts.append(serializer.LAST_CHUNK)
            elif body:
                parts.append(body)
        out: list[Event] = [Write(parts)]
        if end:
            self._finish(out, now)
        return out

    def send_body(self, body: Buffer, end: bool, now: float) -> list[Event]:
        """More of the response's body (``end``: the last of it)."""
        plan = self.plan
        assert plan is not None
        out: list[Event] = []
        if plan.body_allowed:
            self.sent += len(body)
            if plan.chunked:
                parts = serializer.chunk(body) if body else []
                if end:
                    parts.append(serializer.LAST_CHUNK)
                if parts:
                    out.append(Write(parts))
            elif body:
                out.append(Write([body]))
        if end:
            self._finish(out, now)
        return out

    def _finish(self, out: list[Event], now: float) -> None:
        out.append(Ended(self.current, self.status, self.sent, True))
        plan = self.plan
        self.last_active = now
        self.current = None
        self.plan = None
        self.upgrade = None
        if plan is not None and not plan.keep_alive:
            self.closing = True
            self.pending.clear()
            self._close(out)
            return
        self.held = b""  # an upgrade request is never persistent: nothing follows it
        if self.pending or self.error is not None or self.closing:
            self._next(out)
        else:
            self._continue(out)

    def accept_upgrade(self, response: bytes) -> list[Event]:
        """The app accepted ``current``'s WebSocket handshake: ``response`` (the 101)
        goes out, and every byte after it is the WebSocket's."""
        req = self.current
        assert req is not None
        assert self.upgrade is not None
        out: list[Event] = [Write([response]), Ended(req, 101, 0, False)]
        self.status = 101
        self.switched = "websocket"
        self.current = None
        self.plan = None
        self.upgrade = None
        self.pending.clear()
        held, self.held = self.held, b""
        self._reading(True, out)
        out.append(Switch("websocket", held, req))
        return out

    def cut(self) -> list[Event]:
        """End a response that has started, short: its framing is broken, so close."""
        out: list[Event] = [Ended(self.current, self.status, self.sent, False)]
        self.current = None
        self.closing = True
        self._close(out)
        return out

    def fail(
        self,
        status: int,
        retry_after: int = 0,
        extra: bytes = b"",
        out: list[Event] | None = None,
    ) -> list[Event]:
        """Answer ``current`` with ``status`` (or cut it, if its response started), drop
        it, and close: used for 502, 503, 504 and a refused handshake."""
        if out is None:
            out = []
        if self.started and self.current is not None:
            out += self.cut()
            return out
        self._error(status, extra, out, retry_after)
        self.current = None
        return out

    def _error(self, status: int, extra: bytes, out: list[Event], retry_after: int = 0) -> None:
        """A small error response of our own, then close (the framing is in doubt)."""
        self.closing = True
        if self.closed:
            return
        head = self.settings.date_server + extra
        if retry_after:
            head += b"retry-after: %d\r\n" % retry_after
        out.append(Write([serializer.error_response(status, head)]))
        out.append(Ended(self.current, status, 0, False))
        self._close(out)

    def _close(self, out: list[Event]) -> None:
        if not self.closed:
            self.closed = True
            self.closing = True
            out.append(CLOSE)

    def close(self) -> list[Event]:
        """The server closes the connection (idle, draining)."""
        out: list[Event] = []
        self.closing = True
        self._close(out)
        return out

    def connection_lost(self) -> list[Request]:
        """The connection is gone (its ``current``, if any, abandoned by the shell first):
        → the requests that were never answered (their stored bodies are the shell's)."""
        self.closing = self.closed = True
        self.current = None
        left = [r for r in (self.parser.head_pending, *self.pending) if r is not None]
        self.pending.clear()
        return left

    # -- flow and deadlines ------------------------------------------------------------------

    def pause_writing(self, now: float) -> None:
        self.write_paused = True
        self.paused_since = now

    def resume_writing(self) -> None:
        self.write_paused = False

    def expire(self, now: float) -> list[Event]:
        """The deadlines that passed by ``now``: write (the client stopped reading),
        header (slowloris), body (an upload that stalled), idle keep-alive."""
        settings = self.settings
        out: list[Event] = []
        if self.closed or self.switched:
            return out
        if self.write_paused and now - self.paused_since >= settings.write_timeout:
            self.closing = self.closed = True
            out.append(ABORT)
        elif self.current is None:
            if self.head_since:
                if now - self.head_since >= settings.header_timeout:
                    self._error(408, b"", out)
            elif self.parser.head_pending is not None:
                if now - self.last_active >= settings.body_timeout:
                    self._error(408, b"", out)
            elif not self.pending and now - self.last_active >= settings.keep_alive:
                self._close(out)
        return out

    def idle(self) -> bool:
        """Between requests, with nothing queued (a drain may close it now)."""
        return self.current is None and not self.pending

    def fresh(self) -> bool:
        """Accepted, and not one byte of a request seen yet."""
        return (
            self.seq == 0
            and not self.head_since
            and self.parser.head_pending is None
            and not self.closing
        )
