"""The reactor: sessions, the request queue and dispatch, on one event loop.

It owns every client connection (``sessions``, keyed by session id, never by
fd) and every worker link.  Complete requests are dispatched to a worker
chosen by the :class:`Dispatcher`, or wait in ``queue`` (one queue in front of
all workers, so a slow request never holds up requests an idle worker could
take).  A once-a-second tick refreshes the cached Date header and closes
keep-alive connections idle past ``--keep-alive``: one sweep per loop, not a
timer per connection.

It never runs application code and never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from swserve.config import Config
from swserve.ipc import busy, control, framing
from swserve.ipc.channel_set import SESSION_SHIFT
from swserve.ipc.control import Mode
from swserve.metrics.requests import RemoteSources, RequestMetrics, WebSocketMetrics
from swserve.protocol import serializer
from swserve.protocol.limits import Limits
from swserve.protocol.parser import HttptoolsParser, Parser
from swserve.protocol.ws_handshake import GOING_AWAY, SERVICE_RESTART
from swserve.reactor.affinity import Keys
from swserve.reactor.dispatcher import Dispatcher, Waiting, WorkerSlot
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.push_hub import PushHub
from swserve.reactor.ws_conn import WsSessions
from swserve.static.handoff import INBOX_SOCKETS, Inbox

if TYPE_CHECKING:
    from swserve.logs.access import AccessLog
    from swserve.reactor.push_route import PushRouter
    from swserve.reactor.worker_link import WorkerLink
    from swserve.static.serve import StaticFiles

log = logging.getLogger("swserve.error")

# Draining: how long a connection accepted just before, still silent, gets to send
# its request (it is probably on the wire) before it is closed as idle.
FRESH_GRACE = 0.5

# --reactors N: how soon a reactor looks again at requests queued while every
# worker was busy (with work of other reactors, which finish without telling it)
QUEUE_RECHECK = 0.002


# The Date header's names, fixed by RFC 9110 whatever the locale (so not strftime).
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def http_date(seconds: float) -> str:
    """``seconds`` since the epoch as an HTTP date: ``Sun, 06 Nov 1994 08:49:37 GMT``.

    What ``email.utils.formatdate(seconds, usegmt=True)`` returns, without importing
    the email package (~4 ms of every start-up).
    """
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class Http2Gate:
    """``--http2 on``: who may open cleartext HTTP/2 (h2c).

    Only the peers in ``--forwarded-allow-ips`` (a proxy) unless ``--http2-cleartext
    any``: behind a proxy that does not speak h2c, a client's h2c would reach us as
    bytes the proxy never checked (request smuggling).  TLS clients choose h2 by ALPN.
    """

    __slots__ = ("trusted",)

    def __init__(self, config: Config) -> None:
        from swserve.net.proxy import TrustedPeers

        self.trusted = (
            None if config.http2_cleartext == "any" else TrustedPeers(config.forwarded_allow_ips)
        )

    def cleartext(self, peer: object) -> bool:
        if self.trusted is None:
            return True
        return (peer[0] if isinstance(peer, tuple) else "") in self.trusted


def parser_factory(name: str, limits: Limits) -> Callable[[], Parser]:
    if name == "h11":
        from swserve.protocol.h11_parser import H11Parser

        return lambda: H11Parser(limits)
    return lambda: HttptoolsParser(limits)


class Reactor:
    def __init__(
        self, config: Config, *, on_event: Callable[[control.Message], None], index: int = 0
    ) -> None:
        self.config = config
        self.limits = Limits(
            request_line=config.limit_request_line,
            header_count=config.limit_request_fields,
            header_field=config.limit_request_field_size,
            body=config.max_body_size,
        )
        self._last_overload_log = 0.0
        self.on_connection_closed: Callable[[], None] | None = None  # set by the host
        # connections accepted but not yet sessions (set by whoever runs the acceptor)
        self.arriving: Callable[[], int] = lambda: 0
        self.access_log: AccessLog | None = None
        if config.access_log:  # deferred: the module is only needed with --access-log
            from swserve.logs.access import AccessLog

            self.access_log = AccessLog(config.access_log_format, config.access_log_exclude)
        self.make_parser = parser_factory(config.http, self.limits)
        self.static: StaticFiles | None = None  # --static: answered without a worker
        # the app's file responses arrive as descriptors here (static/handoff.py)
        self.files = Inbox(INBOX_SOCKETS[index]) if index < len(INBOX_SOCKETS) else None
        if config.static:
            from swserve.static.serve import StaticFiles, rules_from

            rules = rules_from(config)
            assert rules is not None
            self.static = StaticFiles(rules)
        self.http2 = Http2Gate(config) if config.http2 == "on" else None
        self.metrics = RequestMetrics() if config.metrics_bind else None  # for /metrics
        self.remote = RemoteSources()  # what base-mode workers count and send (METRICS)
        self.dispatcher = Dispatcher(config.dispatch, busy.TABLE)
        self.keys = Keys.from_config(config)  # --dispatch ip / key:...: the request's key
        self.sessions: dict[int, HttpConnection] = {}
        # HTTP/2 streams in ``sessions`` (each its own exchange, not a connection)
        self.h2_streams = 0
        # the open WebSocket sessions (also in ``sessions``, as connections)
        self.ws = WsSessions(config, self.on_ws_ended)
        if self.metrics is not None:
            self.ws.metrics = WebSocketMetrics()
        # server push: frames from any linked process (base-mode master: a PushRouter)
        self.push: PushHub | PushRouter = PushHub(self.ws, counts=index == 0)
        self.interface = ""  # the app's, once a worker is ready: "asgi" gets WebSockets
        # requests waiting for a worker: for any (shared), or for their key's (pinned)
        self.queue: Waiting[HttpConnection] = Waiting(self.dispatcher)
        self.links: dict[int, WorkerLink] = {}
        self.draining = False
        self.now = time.monotonic()
        self.date_server = b""
        self._on_event = on_event  # tells the master: Ready, Served, Timeout, Idle, …
        self._watches: dict[int, int] = {}  # pid → report Served at this count (the manager's)
        # reactor i numbers its sessions from i << SESSION_SHIFT: a worker linked to
        # several reactors answers a session's reactor (ipc/channel_set.py)
        self.index = index
        self._session_ids = index << SESSION_SHIFT
        self._link_keys = 0
        self._tick_handle: asyncio.TimerHandle | None = None
        self._close_idle = True
        self._queue_timer: asyncio.TimerHandle | None = None
        self._update_clock()

    # -- ids ------------------------------------------------------------------------

    def new_session_id(self) -> int:
        self._session_ids += 1
        return self._session_ids

    def connections(self) -> int:
        """Client connections open (the session table less its HTTP/2 streams)."""
        return len(self.sessions) - self.h2_streams

    def new_link_key(self) -> int:
        self._link_keys += 1
        return self._link_keys

    # -- clock ----------------------------------------------------------------------

    def _update_clock(self) -> None:
        self.now = time.monotonic()
        date = http_date(time.time()).encode()
        self.date_server = serializer.date_server_block(
            date, date_header=self.config.date_header, server_header=self.config.server_header
        )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.files is not None:
            self.files.start(loop)
        self._tick()

    def _tick(self) -> None:
        self._update_clock()
        keep_alive = self.config.keep_alive
        config = self.config
        timeout = config.timeout
        slowlog = config.slowlog_timeout
        now = self.now
        for conn in list(self.sessions.values()):
            if conn.ws is not None:
                continue  # a WebSocket session: its own sweep (reactor/ws_conn.py)
            if conn.h2 is not None:
                conn.h2.sweep(now)  # HTTP/2: stalled streams, idle, write timeout
                continue
            if conn.write_paused and now - conn.paused_since >= config.write_timeout:
                conn.closing = True
                conn.transport.abort()  # the client stopped reading: its worker gets DISCONNECT
            elif conn.current is None:
                if conn.head_since:
                    if now - conn.head_since >= config.header_timeout:
                        conn.write_error(408)  # slowloris, or a client that stalled
                elif conn.parser.head_pending is not None:
                    if now - conn.last_active >= config.body_timeout:
                        conn.write_error(408)
                elif not conn.pending and now - conn.last_active >= keep_alive:
                    conn.closing = True
                    conn.transport.close()
            elif conn.slot is not None:
                running = now - conn.dispatched_at
                if timeout and running >= timeout:
                    self._time_out(conn)
                elif slowlog and running >= slowlog and not conn.slow_logged:
                    conn.slow_logged = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(conn.slot.pid, signal.SIGUSR2)  # the worker dumps the stack
        if config.heartbeat_timeout:
            self._check_liveness(now, config.heartbeat_timeout)
        if self.draining:  # early connections whose grace has passed are idle now
            self._close_idle_connections()
            self.check_idle()
        # with --timeout or --slowlog-timeout, sweep often enough to act within a quarter of it
        limits = [t for t in (timeout, slowlog, FRESH_GRACE if self.draining else 0) if t]
        interval = min(1.0, min(limits) / 4) if limits else 1.0
        self._tick_handle = self._loop.call_later(interval, self._tick)

    def _check_liveness(self, now: float, limit: float) -> None:
        """Replace a worker whose loop has gone silent with no request to account for it.

        A single-threaded WSGI worker cannot send heartbeats while it runs a
        request (that is --timeout's business); an ASGI worker's loop and a
        threaded worker's reader thread always can.
        """
        for link in list(self.links.values()):
            slot = link.slot
            if slot is None or slot.retiring or now - link.last_seen < limit:
                continue
            # A one-thread WSGI worker is silent while it runs a request: in process
            # mode we see the request; a base-mode worker's loop only ever blocks in
            # the app (its --timeout alarm covers that).
            if (
                link.interface == "wsgi"
                and slot.capacity == 1
                and (slot.inflight or self.config.mode == Mode.BASE)
            ):
                continue
            log.warning(
                "worker %d (pid %d) has not answered for %.0fs with %d request(s) in flight: "
                "replacing it",
                slot.worker_id,
                slot.pid,
                now - link.last_seen,
                slot.inflight,
            )
            slot.retiring = True
            self.leave_dispatch(slot)
            self._on_event(control.Timeout(slot.pid))

    def _time_out(self, conn: HttpConnection) -> None:
        """Answer 504 (or close, if the response started) and deal with the worker."""
        slot = conn.slot
        assert slot is not None
        link = self.links.get(slot.key)
        log.warning(
            "request %s %s ran past --timeout %gs on worker %d (pid %d)",
            conn.current.method.decode() if conn.current else "?",
            conn.current.target[:200].decode("latin-1") if conn.current else "?",
            self.config.timeout,
            slot.worker_id,
            slot.pid,
        )
        if link is not None and link.interface == "asgi":
            link.send_cancel(conn)  # the loop is alive: cancel only this request
        elif not slot.retiring:
            # a WSGI thread cannot be interrupted: replace the whole worker
            slot.retiring = True
            self.leave_dispatch(slot)
            self._on_event(control.Timeout(slot.pid))
        if conn.started:
            conn.cut()
        else:
            conn.write_error(504)
        conn.current = None

    def stop(self) -> None:
        self.ws.stop()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._queue_timer is not None:
            self._queue_timer.cancel()

    # -- requests ---------------------------------------------------------------------

    def submit(self, conn: HttpConnection) -> None:
        queue = self.queue
        if self.keys is not None:
            request = conn.current
            assert request is not None
            peer = conn.transport.get_extra_info("peername")
            key = self.keys.key(peer[0] if isinstance(peer, tuple) else "", request.headers)
            if key is not None:
                self._submit_keyed(conn, key)
                return
        # in order: nothing overtakes a request that waits for any worker
        slot = self.dispatcher.pick(conn.session) if not queue.shared else None
        if slot is None:
            if self._full():
                self._overloaded(conn)
                return
            queue.append(conn)
            if self.dispatcher.busy is not None:
                self._watch_queue()
            return
        self._send(conn, slot)

    def _submit_keyed(self, conn: HttpConnection, key: bytes) -> None:
        """Affinity: to the key's worker, or wait for it (not for any other)."""
        dispatcher = self.dispatcher
        owner = dispatcher.owner(key)
        if owner is not None and dispatcher.room(owner) and not self.queue.waits_for(owner):
            self._send(conn, owner)
            return
        if self._full():
            self._overloaded(conn)
            return
        self.queue.pin(conn, key, owner)
        if dispatcher.busy is not None:
            self._watch_queue()

    def _full(self) -> bool:
        limit = self.config.max_queued_requests
        return bool(limit) and len(self.queue) >= limit

    def _overloaded(self, conn: HttpConnection) -> None:
        """503 at once, rather than a queue that grows until clients time out."""
        now = time.monotonic()
        if now - self._last_overload_log >= 5.0:  # at most one line every 5 s
            self._last_overload_log = now
            log.warning(
                "%d requests are waiting for a worker (--max-queued-requests): answering 503",
                len(self.queue),
            )
        conn.write_error(503, retry_after=1)
        conn.current = None

    def flow(self, conn: HttpConnection, kind: int) -> None:
        """BUFFER_FULL / BUFFER_EMPTY: tell whoever produces ``conn``'s response."""
        slot = conn.slot
        if slot is not None and conn.current is not None:
            link = self.links.get(slot.key)
            if link is not None:
                link.send_flow(kind, conn)

    def _send(self, conn: HttpConnection, slot: WorkerSlot) -> None:
        slot.inflight += 1
        conn.slot = slot
        conn.slow_logged = False
        conn.dispatched_at = time.monotonic()
        link = self.links[slot.key]
        link.send_request(conn)
        if conn.write_paused:  # the client is still behind on an earlier response
            link.send_flow(framing.BUFFER_FULL, conn)

    def watch(self, pid: int, count: int) -> None:
        """The manager's ``Watch``: report ``Served`` once ``pid`` has answered ``count``.

        It may come before the worker is ready (it is sent at fork): kept until then.
        ``count`` 0: forget ``pid`` (it exited).
        """
        if not count:
            self._watches.pop(pid, None)
            return
        self._watches[pid] = count
        for link in self.links.values():
            if link.slot is not None and link.pid == pid:
                self._check_watch(link.slot)

    def _check_watch(self, slot: WorkerSlot) -> None:
        """Report (only report: the supervision policy decides) a watched count reached."""
        count = self._watches.get(slot.pid, 0)
        if count and slot.served >= count and not slot.recycle_asked:
            slot.recycle_asked = True
            self._on_event(control.Served(slot.pid, slot.served))

    def retire(self, pid: int) -> None:
        for link in list(self.links.values()):
            if link.pid == pid:
                link.retire()

    @property
    def websockets(self) -> bool:
        """Does an upgrade request become a WebSocket session (else it is plain HTTP)?"""
        return self.interface == "asgi" and self.config.ws != "none"

    def on_ws_ended(self, key: int) -> None:
        """A WebSocket session ended: its retiring worker may be done now."""
        link = self.links.get(key)
        slot = link.slot if link is not None else None
        if (
            link is not None
            and slot is not None
            and slot.retiring
            and not slot.inflight
            and not self.ws.count(key)
        ):
            link.send_stop()
        self.check_idle()

    def on_slot_free(self, slot: WorkerSlot) -> None:
        table = self.dispatcher.busy
        if table is not None:  # --reactors N: the worker's own count covers every reactor
            slot.served = max(slot.served, table.served[slot.cell])
        self._check_watch(slot)
        self._dispatch_queued()
        self.check_idle()

    def _dispatch_queued(self) -> None:
        queue = self.queue
        if not queue:
            return
        # (a request whose client left while queued has no current request: dropped)
        for conn, target in queue.ready(_waiting, _session):
            self._send(conn, target)
        if queue and self.dispatcher.busy is not None:
            self._watch_queue()

    def leave_dispatch(self, slot: WorkerSlot) -> None:
        """``slot`` takes no more requests: its waiting requests follow their keys."""
        self.dispatcher.remove(slot)
        self._dispatch_queued()

    def _watch_queue(self) -> None:
        """--reactors N: requests wait here while every worker is busy, maybe with
        other reactors' work, whose end we are not told of.  Look again shortly."""
        if self._queue_timer is None:
            self._queue_timer = self._loop.call_later(QUEUE_RECHECK, self._recheck_queue)

    def _recheck_queue(self) -> None:
        self._queue_timer = None
        self._dispatch_queued()

    def check_idle(self) -> None:
        """While draining, tell the master once nothing is left to answer."""
        if self.draining and not self.busy():
            self._on_event(control.Idle())

    def abandon(self, conn: HttpConnection) -> None:
        """The client of ``conn.current`` left: drop it if queued, tell its worker if not."""
        slot = conn.slot
        if slot is None:
            self.queue.remove(conn)
            return
        link = self.links.get(slot.key)
        if link is not None:
            link.send_disconnect(conn)

    def in_flight(self) -> int:
        """Requests with a worker now (for /metrics)."""
        return sum(link.slot.inflight for link in self.links.values() if link.slot)

    def busy(self) -> bool:
        """Is any request queued, with a worker, or being written, or a connection
        accepted and on its way to becoming a session?"""
        now = time.monotonic()
        return (
            bool(self.queue)
            or self.arriving() > 0
            or bool(self.ws.by_id)
            or any(
                conn.current is not None or (self.draining and self._fresh(conn, now))
                for conn in self.sessions.values()
            )
        )

    # -- workers ------------------------------------------------------------------------

    def on_worker_hello(self, link: WorkerLink) -> None:
        self.links[link.key] = link

    def on_worker_ready(self, link: WorkerLink, interface: str) -> None:
        slot = link.slot
        assert slot is not None
        self.links[link.key] = link
        self.interface = interface
        self.dispatcher.add(slot)
        self._on_event(control.Ready(slot.worker_id, slot.pid, control.Interface(interface)))
        self.on_slot_free(slot)

    def on_worker_served(self, slot: WorkerSlot, served: int, flags: int) -> None:
        """Base mode: a worker's own count (at once when it reaches its watch), or a timeout."""
        slot.served = served
        if slot.retiring:
            return
        if flags & framing.SERVED_TIMED_OUT:
            # the worker has answered 504 itself and can go on serving: the policy
            # replaces it the graceful way (replacement first), not with a SIGTERM that
            # would cut off the connections it holds
            self._on_event(control.Timeout(slot.pid, graceful=True))
        self._check_watch(slot)

    def on_boot_error(self, link: WorkerLink, message: str) -> None:
        self._on_event(control.BootError(message))

    def on_worker_lost(self, link: WorkerLink) -> None:
        self.links.pop(link.key, None)
        self.push.link_lost(link.key)
        self.ws.peer_lost(link.key)
        self.remote.lost(link.key)
        if link.slot is not None:
            self.leave_dispatch(link.slot)
        served = link.slot.served if link.slot is not None else 0
        self._watches.pop(link.pid, None)
        self._on_event(control.Lost(link.worker_id, link.pid, served))

    # -- shutdown -------------------------------------------------------------------------

    @property
    def no_keep_alive(self) -> bool:
        return self.draining or self.config.keep_alive == 0

    def drain(self, *, close_idle: bool = True) -> None:
        """Stop keeping connections alive: close idle ones now (unless told not to), the
        rest after their response.

        A connection accepted a moment ago that has not sent a byte yet is not
        idle but early: its request is likely on the wire.  It gets FRESH_GRACE
        to send it (answered with Connection: close) before it is closed, and
        counts as busy meanwhile.
        """
        self.draining = True
        self._close_idle = close_idle
        # WebSocket sessions go on for --ws-drain-timeout, then 1001; a base-mode worker
        # that retires (close_idle=False) says 1012: its replacement is already serving
        self.ws.drain(GOING_AWAY if close_idle else SERVICE_RESTART)
        self._close_idle_connections()
        if not self.busy():
            self._on_event(control.Idle())

    def _close_idle_connections(self) -> None:
        if not self._close_idle:
            return
        now = time.monotonic()
        for conn in list(self.sessions.values()):
            if conn.ws is not None:
                continue  # closed by the WebSocket drain (reactor/ws_conn.py)
            if conn.h2 is not None:
                conn.h2.drain()  # GOAWAY: its streams finish, then it closes
                continue
            if conn.current is None and not conn.pending and not self._fresh(conn, now):
                conn.closing = True
                conn.transport.close()

    @staticmethod
    def _fresh(conn: HttpConnection, now: float) -> bool:
        return (
            conn.seq == 0
            and not conn.head_since
            and conn.parser.head_pending is None
            and not conn.closing
            and now - conn.accepted_at < FRESH_GRACE
        )


def _waiting(conn: HttpConnection) -> bool:
    return conn.current is not None


def _session(conn: HttpConnection) -> int:
    return conn.session
