"""Base mode: this worker accepts, parses and answers its own connections.

Swoole's SWOOLE_BASE.  There is no reactor in the master and no IPC on the
request path: the worker runs the very connection code of a process-mode
reactor (``reactor/http_conn.py`` and ``reactor/core.py``: limits, timeouts,
keep-alive, pipelining, the serializer) and the same app adapters
(``apps/wsgi.py``, ``apps/asgi.py``).  Only the hand-over differs:
:meth:`LocalReactor.submit` runs the app here, through an executor, instead of
framing the request to another process.

=====================  ====================================================
executor               how a request runs
=====================  ====================================================
:class:`InlineWSGI`    ``--threads 1``: on the loop itself, one at a time
                       (gunicorn's sync worker, with keep-alive, slow
                       clients and timeouts handled by the loop)
:class:`ThreadedWSGI`  ``--threads N``: a pool of N threads; the response
                       hops back to the loop with ``call_soon_threadsafe``
:class:`ASGIExecutor`  a task per request on the loop
=====================  ====================================================

Every worker accepts from the *same* listening sockets, inherited from the
master: a worker that retires stops accepting and the connections waiting in
the kernel's queue go to the others (per-worker SO_REUSEPORT queues would die
with their worker).

The worker keeps its link to the master for the control plane only: HELLO,
READY, BOOT_ERROR, HEARTBEAT and SERVED go up; STOP (retire) comes down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol

from swserve.apps.asgi import ASGIApp, RequestCycle, build_scope
from swserve.apps.asgi_ws import SessionRunner, WebSocketCycle, build_ws_scope
from swserve.apps.wsgi import Body, Paused, WSGIAdapter
from swserve.base.local_sink import InlineSink, LocalSink, LocalWsSink
from swserve.config import Config
from swserve.errors import EXIT_OK, AppLoadError, ClientDisconnected
from swserve.ipc import codec, control, framing
from swserve.ipc.channel_async import AsyncChannel
from swserve.metrics.collect import reactor_snapshot
from swserve.net.listeners import Listener
from swserve.net.proxy import Frontend
from swserve.protocol.request import RequestHead
from swserve.reactor.acceptor import Acceptor
from swserve.reactor.core import Reactor
from swserve.reactor.dispatcher import WorkerSlot
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.push_hub import PushHub, base_session
from swserve.reactor.spool import SpooledBody
from swserve.worker.slowlog import Running, SlowLog
from swserve.worker.spooled import open_spooled

if TYPE_CHECKING:
    from swserve.apps.lifespan import Lifespan
    from swserve.worker.main import WorkerHooks

log = logging.getLogger("swserve.error")

_HEARTBEAT: Final = framing.encode(framing.HEARTBEAT, 0, 0, 0)


class RequestTimeout(BaseException):
    """Raised into an inline WSGI app by SIGALRM when it runs past --timeout.

    A BaseException, so the adapter's ``except Exception`` does not turn it
    into a 500: the loop answers 504 and the worker asks to be replaced.
    """


# -- the request as the adapters take it ----------------------------------------------


def request_head(conn: HttpConnection) -> RequestHead:
    """The head a worker decodes from a REQUEST frame, built without the frame."""
    req = conn.current
    assert req is not None
    return RequestHead(req.method, req.target, req.version, tuple(conn.prefix), list(req.headers))


def request_body(conn: HttpConnection) -> Body:
    body: object = conn.current.body if conn.current is not None else b""
    if isinstance(body, SpooledBody):
        return open_spooled(body.finish().encode())  # the adapter closes it
    assert isinstance(body, bytearray)
    return bytes(body) if body else b""


# -- executors --------------------------------------------------------------------------


class Executor(Protocol):
    capacity: int

    def start(self, conn: HttpConnection) -> None: ...
    def disconnect(self, conn: HttpConnection) -> None: ...
    def flow(self, conn: HttpConnection, writable: bool) -> None: ...
    def cancel(self, conn: HttpConnection) -> bool: ...


class InlineWSGI:
    """``--threads 1``: the app runs on the loop, one request at a time.

    ``start`` is re-entered when a response completes and the connection's
    next pipelined request is submitted from inside the app's call; the
    ``pending`` trampoline runs it after the current one instead of
    recursing.  --timeout and --slowlog-timeout use SIGALRM, as the loop
    cannot look at the clock while the app holds it.
    """

    capacity = 1

    def __init__(self, reactor: LocalReactor, adapter: WSGIAdapter, slowlog: SlowLog) -> None:
        self.reactor = reactor
        self.adapter = adapter
        self.slowlog = slowlog
        self.pending: deque[HttpConnection] = deque()
        self.running = False
        # streamed responses paused while their client is behind, by session
        self.paused: dict[int, tuple[HttpConnection, Paused]] = {}
        config = reactor.config
        self.timeout = config.timeout
        self.slow_after = config.slowlog_timeout
        self.alarm = bool(self.timeout or self.slow_after)
        self._deadline = 0.0
        if self.alarm:
            signal.signal(signal.SIGALRM, self._on_alarm)

    def start(self, conn: HttpConnection) -> None:
        self.pending.append(conn)
        if self.running:
            return
        self.running = True
        try:
            while self.pending:
                self._run(self.pending.popleft())
        finally:
            self.running = False

    def _run(self, conn: HttpConnection) -> None:
        reactor = self.reactor
        seq = conn.seq
        paused: Paused | None = None
        try:
            if conn.current is None:
                return
            head = request_head(conn)
            if not self.alarm:
                paused = self.adapter(head, request_body(conn), InlineSink(conn, seq))
                return
            self._arm(head)
            try:
                paused = self.adapter(head, request_body(conn), InlineSink(conn, seq))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self.slowlog.running.clear()
        except RequestTimeout:
            reactor.timed_out(conn, seq)
        finally:
            if paused is None:
                reactor.finished()
            else:  # the client is behind: go on once it has read (resume_writing)
                self.paused[conn.session] = (conn, paused)

    def _resume(self, session: int) -> None:
        item = self.paused.pop(session, None)
        if item is None:
            return
        conn, run = item
        again = run.step()
        if again is not None:
            self.paused[session] = (conn, again)
        else:
            self.reactor.finished()

    def _arm(self, head: RequestHead) -> None:
        now = time.monotonic()
        self._deadline = now + self.timeout if self.timeout else 0.0
        if self.slow_after:
            method, path = head.method.decode("latin-1"), head.target[:200].decode("latin-1")
            self.slowlog.running[(0, 0)] = Running(method, path, thread=threading.get_ident())
        first = min(t for t in (self.timeout, self.slow_after) if t)
        signal.setitimer(signal.ITIMER_REAL, first)

    def _on_alarm(self, signum: int, frame: types.FrameType | None) -> None:
        running = self.slowlog.running.get((0, 0))
        if running is not None and not running.logged:
            self.slowlog.dump(frame)
        if self._deadline:
            left = self._deadline - time.monotonic()
            if left <= 0.001:
                raise RequestTimeout
            signal.setitimer(signal.ITIMER_REAL, left)

    def disconnect(self, conn: HttpConnection) -> None:
        """A client that left while its streamed response was paused: end the app's run."""
        item = self.paused.pop(conn.session, None)
        if item is not None:
            item[1].close()
            self.reactor.finished()

    def flow(self, conn: HttpConnection, writable: bool) -> None:
        if writable and conn.session in self.paused:
            if self.running:  # never run two apps at once on this loop
                asyncio.get_running_loop().call_soon(self._resume, conn.session)
            else:
                self._resume(conn.session)

    def cancel(self, conn: HttpConnection) -> bool:
        return False  # only reached for a request the alarm already answered


class ThreadedWSGI:
    """``--threads N``: N requests at once in a pool; responses come back to the loop."""

    def __init__(
        self, reactor: LocalReactor, adapter: WSGIAdapter, threads: int, slowlog: SlowLog
    ) -> None:
        self.reactor = reactor
        self.adapter = adapter
        self.capacity = threads
        self.slowlog = slowlog
        self.loop = asyncio.get_running_loop()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="swserve-wsgi")
        self.gates: dict[tuple[int, int], _Gate] = {}

    def start(self, conn: HttpConnection) -> None:
        key = (conn.session, conn.seq)
        gate = self.gates[key] = _Gate()
        if conn.write_paused:
            gate.writable.clear()
        sink = _ThreadSink(self.loop, LocalSink(conn, conn.seq), gate)
        self.pool.submit(self._run, key, request_head(conn), request_body(conn), sink)

    def _run(self, key: tuple[int, int], head: RequestHead, body: Body, sink: _ThreadSink) -> None:
        running = self.slowlog.running if self.slowlog.timeout else None
        if running is not None:
            method, path = head.method.decode("latin-1"), head.target[:200].decode("latin-1")
            running[key] = Running(method, path, thread=threading.get_ident())
        try:
            self.adapter(head, body, sink)
        except BaseException:
            log.exception("the app raised a BaseException; the response is aborted")
            sink.send_abort()
        finally:
            if running is not None:
                running.pop(key, None)
            self.loop.call_soon_threadsafe(self._done, key)

    def _done(self, key: tuple[int, int]) -> None:
        self.gates.pop(key, None)
        self.reactor.finished()

    def disconnect(self, conn: HttpConnection) -> None:
        gate = self.gates.get((conn.session, conn.seq))
        if gate is not None:
            gate.gone = True
            gate.writable.set()

    def flow(self, conn: HttpConnection, writable: bool) -> None:
        gate = self.gates.get((conn.session, conn.seq))
        if gate is not None:
            if writable:
                gate.writable.set()
            else:
                gate.writable.clear()

    def cancel(self, conn: HttpConnection) -> bool:
        self.disconnect(conn)  # its writes end; the thread itself cannot be stopped
        return False

    def shutdown(self) -> None:
        for gate in self.gates.values():
            gate.gone = True
            gate.writable.set()
        self.pool.shutdown(wait=True)


class _Gate:
    __slots__ = ("gone", "writable")

    def __init__(self) -> None:
        self.writable = threading.Event()
        self.writable.set()
        self.gone = False


class _ThreadSink:
    """A pool thread's side of a LocalSink: calls hop to the loop, body writes wait for room."""

    __slots__ = ("gate", "loop", "sink")
    paused = False  # never: send_body waits on the gate

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: LocalSink, gate: _Gate) -> None:
        self.loop = loop
        self.sink = sink
        self.gate = gate

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        self.loop.call_soon_threadsafe(self.sink.send_start, status, flags, headers, body, end)

    def send_body(self, data: bytes, end: bool) -> None:
        gate = self.gate
        if data:
            gate.writable.wait()
            if gate.gone:
                raise ClientDisconnected
        self.loop.call_soon_threadsafe(self.sink.send_body, data, end)

    def send_abort(self) -> None:
        self.loop.call_soon_threadsafe(self.sink.send_abort)

    def send_file(
        self, status: int, flags: int, headers: bytes, fd: int, offset: int, length: int
    ) -> None:
        self.loop.call_soon_threadsafe(
            self.sink.send_file, status, flags, headers, fd, offset, length
        )


class ASGIExecutor:
    """A task per request on this loop."""

    def __init__(self, reactor: LocalReactor, app: ASGIApp, lifespan: Lifespan, slowlog: SlowLog):
        self.reactor = reactor
        self.app = app
        self.lifespan = lifespan
        self.slowlog = slowlog
        self.capacity = reactor.config.asgi_concurrency
        self.loop = asyncio.get_running_loop()
        self.running: dict[tuple[int, int], tuple[RequestCycle, asyncio.Task[None]]] = {}
        self.frontend = Frontend.from_config(reactor.config)
        self.sessions = SessionRunner(self._start_ws, reactor.config.ws_max_queue)
        self.released: set[tuple[int, int]] = set()  # accepted sessions: out of the slot count

    def start(self, conn: HttpConnection) -> None:
        req = conn.current
        assert req is not None
        key = (conn.session, conn.seq)
        if conn.upgrade is not None:  # a valid WebSocket handshake
            sink = LocalWsSink(conn, conn.seq, self)
            sink.cycle = self.sessions.connect(key, request_head(conn), sink)
            return
        body: bytes | BinaryIO = request_body(conn)
        cycle = RequestCycle(LocalSink(conn, conn.seq), body, req.method == b"HEAD")
        if conn.write_paused:
            cycle.set_writable(False)
        lifespan = self.lifespan
        state = lifespan.state if lifespan.supported else None
        scope = build_scope(request_head(conn), state, self.frontend)
        task = self.loop.create_task(cycle.run(self.app, scope))
        self.running[key] = (cycle, task)
        slow = self.slowlog.running if self.slowlog.timeout else None
        if slow is not None:
            slow[key] = Running(scope["method"], scope["path"][:200], stack=task.get_stack)
        task.add_done_callback(lambda _: self._done(key))

    def _done(self, key: tuple[int, int]) -> None:
        self.running.pop(key, None)
        if self.slowlog.timeout:
            self.slowlog.running.pop(key, None)
        self.reactor.finished()

    def _start_ws(
        self, key: tuple[int, int], head: RequestHead, cycle: WebSocketCycle
    ) -> asyncio.Task[None]:
        lifespan = self.lifespan
        state = lifespan.state if lifespan.supported else None
        # each base-mode worker numbers its own sessions: the id names the worker too
        session = f"{self.reactor.slot.worker_id}.{self.reactor.slot.pid}.{key[0]}"
        scope = build_ws_scope(head, state, self.frontend, session)
        task = self.loop.create_task(cycle.run(self.app, scope))
        task.add_done_callback(lambda _: self.release(key, done=True))
        return task

    def release(self, key: tuple[int, int], done: bool = False) -> None:
        """A session's handshake no longer holds a slot: it was accepted (a session lives
        for hours and is no request), or its app finished without accepting."""
        if key in self.released:
            if done:
                self.released.discard(key)
            return
        if not done:
            self.released.add(key)
        self.reactor.finished()

    def disconnect(self, conn: HttpConnection) -> None:
        item = self.running.get((conn.session, conn.seq))
        if item is not None:
            item[0].disconnect()
        else:  # a WebSocket client that left during the handshake
            self.sessions.gone((conn.session, conn.seq))

    def flow(self, conn: HttpConnection, writable: bool) -> None:
        item = self.running.get((conn.session, conn.seq))
        if item is not None:
            item[0].set_writable(writable)

    def cancel(self, conn: HttpConnection) -> bool:
        item = self.running.get((conn.session, conn.seq))
        if item is not None:
            item[1].cancel()
        return True


# -- the reactor, local ---------------------------------------------------------------


class LocalReactor(Reactor):
    """A process-mode reactor whose "worker" is this process.

    The sweep, limits and connection handling are inherited; ``submit``
    runs the request here.  Requests beyond the executor's capacity wait in
    ``queue`` exactly as they wait for a free worker in process mode.
    """

    executor: Executor

    def __init__(self, config: Config, worker_id: int, report: WorkerReport) -> None:
        super().__init__(config, on_event=report.on_event)
        self.report = report
        self.keep_idle = False  # retiring: idle keep-alive connections may finish their time
        self.slot = WorkerSlot(0, worker_id, os.getpid(), 1)
        self.push = PushHub(self.ws, local=base_session(os.getpid()), counts=False)

    def use(self, executor: Executor) -> None:
        self.executor = executor
        self.slot.capacity = executor.capacity

    def submit(self, conn: HttpConnection) -> None:
        slot = self.slot
        if slot.inflight >= slot.capacity or self.queue:
            limit = self.config.max_queued_requests
            if limit and len(self.queue) >= limit:
                self._overloaded(conn)
                return
            self.queue.append(conn)
            return
        self._start(conn)

    def _start(self, conn: HttpConnection) -> None:
        slot = self.slot
        slot.inflight += 1
        conn.slot = slot
        conn.slow_logged = False
        conn.dispatched_at = time.monotonic()
        self.executor.start(conn)

    def finished(self) -> None:
        """The app is done with one request (its response may still be in the buffer)."""
        slot = self.slot
        slot.inflight -= 1
        slot.served += 1
        self.report.served(slot.served)
        queue = self.queue.shared  # (no affinity here: nothing is ever pinned)
        while queue and slot.inflight < slot.capacity:
            conn = queue.popleft()
            if conn.current is not None:  # else: the client left while queued
                self._start(conn)
        self.check_idle()

    def abandon(self, conn: HttpConnection) -> None:
        if conn.slot is None:
            self.queue.remove(conn)
            return
        self.executor.disconnect(conn)

    def flow(self, conn: HttpConnection, kind: int) -> None:
        if conn.slot is not None and conn.current is not None:
            self.executor.flow(conn, kind == framing.BUFFER_EMPTY)

    def _time_out(self, conn: HttpConnection) -> None:
        log.warning(
            "request %s %s ran past --timeout %gs",
            conn.current.method.decode() if conn.current else "?",
            conn.current.target[:200].decode("latin-1") if conn.current else "?",
            self.config.timeout,
        )
        if not self.executor.cancel(conn):
            self.report.timed_out()  # a thread cannot be stopped: the worker is replaced
        self._answer_timeout(conn)

    def timed_out(self, conn: HttpConnection, seq: int) -> None:
        """The inline app was interrupted by the --timeout alarm."""
        log.warning("a request ran past --timeout %gs: answering 504", self.config.timeout)
        # the app was cut off anywhere: its state is suspect, so replace the worker
        self.report.timed_out()
        if conn.current is not None and conn.seq == seq:
            self._answer_timeout(conn)

    def _answer_timeout(self, conn: HttpConnection) -> None:
        if conn.started:
            conn.cut()
        else:
            conn.write_error(504)  # still knows its request: the access log and metrics
        conn.current = None

    def in_flight(self) -> int:
        return self.slot.inflight  # the requests this worker runs itself

    def busy(self) -> bool:
        return self.slot.inflight > 0 or super().busy() or (self.keep_idle and bool(self.sessions))


class WorkerReport:
    """What the worker tells the master: ready, alive, how many served, a timeout.

    It decides nothing: the supervision policy (manager/policy.py) chose the
    count to report at (``report_at``, its --max-requests with jitter) and
    decides what a report means.
    """

    def __init__(self, worker_id: int, report_at: int = 0) -> None:
        self.report_at = report_at
        self.worker_id = worker_id
        self.channel: AsyncChannel | None = None
        self.watched = False  # the count reached report_at and was sent
        self.timeout_sent = False
        self.reported = 0
        self.idle = asyncio.Event()
        self.on_change: Callable[[], None] | None = None  # a request was answered

    def on_event(self, message: control.Message) -> None:
        if isinstance(message, control.Idle):
            self.idle.set()

    def served(self, count: int) -> None:
        if self.report_at and count >= self.report_at and not self.watched:
            self.watched = True
            self._send(framing.SERVED_WATCHED, count)
        if self.on_change is not None:
            self.on_change()

    def timed_out(self) -> None:
        """A request ran past --timeout: said once (the policy replaces the worker)."""
        if not self.timeout_sent:
            self.timeout_sent = True
            self._send(framing.SERVED_TIMED_OUT)

    def tick(self, served: int) -> None:
        """Once a second, from the loop: alive, and the count for the master's stats."""
        channel = self.channel
        if channel is not None:
            channel.write(_HEARTBEAT)
            if served != self.reported:
                self._send(0, served)

    def send_metrics(self, snapshot: dict[str, int]) -> None:
        if self.channel is not None:
            payload = codec.encode_metrics(snapshot)
            self.channel.write(framing.encode(framing.METRICS, 0, 0, 0, payload))

    def _send(self, flags: int, served: int = -1) -> None:
        if self.channel is not None:
            if served >= 0:
                self.reported = served
            payload = codec.encode_served(max(served, self.reported))
            self.channel.write(framing.encode(framing.SERVED, flags, 0, 0, payload))


class BaseWorker:
    def __init__(
        self,
        config: Config,
        app: Any,
        interface: str,
        sock: socket.socket,
        listeners: list[Listener],
        worker_id: int,
        hooks: WorkerHooks,
        report_at: int = 0,
    ) -> None:
        self.config = config
        self.app = app
        self.interface = interface
        self.sock = sock
        self.listeners = listeners
        self.worker_id = worker_id
        self.hooks = hooks
        self.report = WorkerReport(worker_id, report_at)
        self.slowlog = SlowLog(config.slowlog_timeout, worker_id)
        self.stopping = False
        self._metrics_due = False

    async def main(self) -> int:
        from swserve.apps.lifespan import Lifespan

        loop = asyncio.get_running_loop()
        config = self.config
        lifespan = Lifespan(self.app, config.lifespan) if self.interface == "asgi" else None
        if lifespan is not None:
            try:
                await lifespan.startup()
            except AppLoadError as exc:
                self.sock.sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, str(exc).encode()))
                raise
        _, channel = await loop.create_unix_connection(
            lambda: AsyncChannel(self._on_frames, self._on_master_lost), sock=self.sock
        )
        self.report.channel = channel
        reactor = self.reactor = LocalReactor(config, self.worker_id, self.report)
        reactor.interface = self.interface  # "asgi": upgrade requests become WebSocket sessions
        if reactor.metrics is not None:
            self.report.on_change = self._metrics_soon
        if lifespan is not None:
            reactor.use(ASGIExecutor(reactor, self.app, lifespan, self.slowlog))
        elif config.threads > 1:
            reactor.use(ThreadedWSGI(reactor, self._adapter(), config.threads, self.slowlog))
        else:
            reactor.use(InlineWSGI(reactor, self._adapter(), self.slowlog))
        self.slowlog.install()
        reactor.start(loop)
        tls = self.listeners[0].ssl if self.listeners else None  # one choice for all
        scheme = "http" if tls is None else "https"
        self.acceptor = Acceptor(
            loop,
            [listener.sock for listener in self.listeners],
            lambda: HttpConnection(reactor, scheme),
            lambda: reactor.connections(),
            config.max_connections,
            batch=ACCEPT_BATCH,
            ssl=tls,
            handshake_timeout=config.header_timeout,
        )
        reactor.on_connection_closed = self.acceptor.connection_closed
        acceptor = self.acceptor
        reactor.arriving = lambda: acceptor.handing_over + acceptor.handshaking
        acceptor.on_settled = reactor.check_idle
        self.acceptor.start()
        # A Python-level handler rather than loop.add_signal_handler: it also runs
        # while an inline WSGI app holds the loop, so the response in flight
        # already carries Connection: close.
        signal.signal(signal.SIGTERM, self._on_sigterm)
        if config.chroot:  # the app is loaded, nothing is served yet
            from swserve.process import chroot

            try:
                chroot.confine(config)
            except AppLoadError as exc:
                self.sock.sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, str(exc).encode()))
                raise
        ready = codec.encode_ready(
            self.worker_id, os.getpid(), reactor.slot.capacity, self.interface
        )
        channel.write(framing.encode(framing.READY, 0, 0, 0, ready))
        self._tick()
        await self.report.idle.wait()
        self._report()  # the final counts, for the master's stats and metrics
        reactor.stop()
        if isinstance(reactor.executor, ThreadedWSGI):
            reactor.executor.shutdown()
        if lifespan is not None:
            await lifespan.shutdown()
        channel.writer.flush()
        channel.transport.close()
        return EXIT_OK

    def _adapter(self) -> WSGIAdapter:
        config = self.config
        return WSGIAdapter(
            self.app,
            multithread=config.threads > 1,
            multiprocess=config.workers > 1,
            frontend=Frontend.from_config(config),
        )

    def _tick(self) -> None:
        if not self.report.idle.is_set():
            self._report()
            asyncio.get_running_loop().call_later(1.0, self._tick)

    def _metrics_soon(self) -> None:
        """Send the counters 0.1 s after a change: a scrape lags a worker by that much,
        and a busy worker sends ten small frames a second, not one per request."""
        if not self._metrics_due:
            self._metrics_due = True
            asyncio.get_running_loop().call_later(METRICS_DELAY, self._send_metrics)

    def _send_metrics(self) -> None:
        self._metrics_due = False
        reactor = self.reactor
        if reactor.metrics is not None:
            self.report.send_metrics(reactor_snapshot(reactor))

    def _report(self) -> None:
        reactor = self.reactor
        self.report.tick(reactor.slot.served)
        self._send_metrics()  # --metrics-bind: the master sums every worker's

    def _on_frames(self, frames: list[framing.Frame]) -> None:
        for kind, flags, session, request, payload in frames:
            if kind == framing.STOP:
                self.stop(False)  # retired: a replacement is already serving
            elif kind in framing.PUSH_FRAMES:  # routed here by the master (push_route.py)
                self.reactor.push.handle(
                    kind, flags, session, request, bytes(payload), self._push_reply
                )
            else:
                log.error("unexpected %s frame from the master", framing.FRAME_NAMES[kind])

    def _push_reply(self, request: int, outcome: int, count: int) -> None:
        payload = codec.encode_count(count) if count else b""
        channel = self.report.channel
        if channel is not None:
            channel.write(framing.encode(framing.PUSH_REPLY, outcome, 0, request, payload))

    def _on_sigterm(self, signum: int, frame: types.FrameType | None) -> None:
        self.reactor.draining = True
        asyncio.get_running_loop().call_soon(self.stop, True)

    def _on_master_lost(self) -> None:
        self.stop(True)

    def stop(self, close_idle: bool) -> None:
        """Stop accepting and finish what this worker holds.

        On SIGTERM (shutdown) idle keep-alive connections close at once.  On
        retire (STOP) they keep their --keep-alive time: a client that sends
        one more request gets it answered with ``Connection: close``, so fewer
        clients race a close with a new request.
        """
        reactor = self.reactor
        if self.stopping:
            if close_idle and reactor.keep_idle:
                reactor.keep_idle = False
                reactor.drain()
            return
        self.stopping = True
        self.acceptor.close()
        self.hooks.stopping()
        if reactor.slot.inflight:
            self.hooks.waiting()
        reactor.keep_idle = not close_idle
        reactor.drain(close_idle=close_idle)


METRICS_DELAY: Final = 0.1  # seconds from an answered request to the METRICS frame

# Connections one worker accepts per wake-up.  Every worker sleeps on the same
# listening socket; taking a few at a time spreads a burst across them.
ACCEPT_BATCH: Final = 4


def run(
    config: Config,
    app: Any,
    interface: str,
    sock: socket.socket,
    listeners: list[Listener],
    worker_id: int,
    hooks: WorkerHooks,
    report_at: int = 0,
) -> int:
    from swserve.process.loop import new_event_loop

    loop = new_event_loop()
    try:
        worker = BaseWorker(config, app, interface, sock, listeners, worker_id, hooks, report_at)
        return loop.run_until_complete(worker.main())
    finally:
        loop.close()
