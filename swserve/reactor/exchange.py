"""What the reactor sees of a session: one request at a time, answered by a worker.

An :class:`Exchange` is what the session table, the dispatcher's queue, the
worker links and the sweep hold: an HTTP/1.1 connection
(``reactor/http_conn.py``, whose ``current`` request changes as the pipeline
moves) or one HTTP/2 stream (``reactor/h2_conn.py``, one request for its
life).  Both answer the same calls: a response from the worker
(``on_response_*``), an error of the reactor's own (``fail``), a cut
(``cut``), a lost worker (``on_worker_lost``), and the sweep's and the
drain's questions (``sweep``, ``drain_idle``, ``fresh``).  What a worker is
running (``slot``, ``dispatched_at``, ``slow_logged``) is the reactor's state
and lives here; the HTTP state is each protocol's own.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, ClassVar

from swserve.ipc.framing import Buffer
from swserve.protocol.request import Request

if TYPE_CHECKING:
    from swserve.protocol.ws_handshake import Upgrade
    from swserve.reactor.core import Reactor
    from swserve.reactor.dispatcher import WorkerSlot
    from swserve.reactor.spool import SpooledBody
    from swserve.static.serve import FileSender, StreamSender


class Exchange:
    __slots__ = (
        "dispatched_at",
        "prefix",
        "reactor",
        "sender",
        "session",
        "slot",
        "slow_logged",
        "spooled",
        "submitted_at",
        "transport",
    )

    # Output buffer watermarks: above HIGH the worker producing this connection's
    # response is told to wait (BUFFER_FULL); below LOW it may go on.  Swoole's
    # buffer_output_size is 2 MiB; 256 KiB keeps 10k slow clients under 2.5 GiB.
    HIGH_WATER = 256 * 1024
    LOW_WATER = 64 * 1024

    transport: asyncio.Transport
    multiplexed: ClassVar[bool] = False  # an HTTP/2 stream (H2Stream), not a socket of its own

    def __init__(self, reactor: Reactor, prefix: list[bytes]) -> None:
        self.reactor = reactor
        self.session = reactor.new_session_id()
        self.prefix = prefix  # scheme, client and server addresses (ipc/codec.py)
        self.slot: WorkerSlot | None = None  # the worker holding ``current``, once dispatched
        self.dispatched_at = 0.0  # when ``current`` went to a worker
        self.submitted_at = 0.0  # when ``current`` was complete (for /metrics)
        self.slow_logged = False  # has --slowlog-timeout asked for its stack already?
        self.spooled: SpooledBody | None = None  # the current request's body file, if any
        # streaming a file body (static/serve.py): by sendfile, or as DATA frames on a stream
        self.sender: FileSender | StreamSender | None = None

    # -- the protocol's state, as the reactor reads it ------------------------------------

    @property
    def current(self) -> Request | None:
        """The request being answered (None: none, or it was answered)."""
        raise NotImplementedError

    @property
    def seq(self) -> int:
        """``current``'s request id within the session."""
        raise NotImplementedError

    @property
    def started(self) -> bool:
        raise NotImplementedError

    @property
    def write_paused(self) -> bool:
        raise NotImplementedError

    @property
    def upgrade(self) -> Upgrade | None:
        """A valid WebSocket handshake, waiting for the app's answer."""
        return None

    @property
    def sent(self) -> int:
        raise NotImplementedError

    @sent.setter
    def sent(self, value: int) -> None:
        raise NotImplementedError

    def blocked(self) -> bool:
        """May a body not be written now (a stream's window or the socket is full)?"""
        return self.write_paused

    def flow(self, kind: int) -> None:
        """BUFFER_FULL / BUFFER_EMPTY: to the worker producing the response."""
        self.reactor.flow(self, kind)

    # -- what the reactor asks of it ---------------------------------------------------------

    def on_response_start(
        self, status: int, flags: int, headers: bytes, body: Buffer, end: bool
    ) -> None:
        raise NotImplementedError

    def on_response_body(self, body: Buffer, end: bool) -> None:
        raise NotImplementedError

    def on_response_abort(self) -> None:
        """The app failed after its response started: the only honest signal is a cut."""
        self.cut()

    def cut(self) -> None:
        raise NotImplementedError

    def fail(self, status: int, retry_after: int = 0) -> None:
        """Answer ``current`` with ``status`` (cut it, if its response started); it ends."""
        raise NotImplementedError

    def on_worker_lost(self) -> None:
        """The worker holding ``current`` died."""
        self.fail(502)

    def sweep(self, now: float) -> bool:
        """The protocol's own deadlines; True: it acted (or owns its timers)."""
        return False

    def drain_idle(self, now: float, grace: float) -> None:
        """The server drains: close now if idle (not ``fresh``)."""

    def fresh(self, now: float, grace: float) -> bool:
        """Accepted less than ``grace`` ago, and silent: its request may be on the wire."""
        return False

    # -- counting -------------------------------------------------------------------------------

    def observe(self, request: Request | None, status: int, sent: int) -> None:
        """Count an exchange that ends now in /metrics."""
        metrics = self.reactor.metrics
        if metrics is None:
            return
        if request is None:
            metrics.observe(b"", status, 0.0, 0, sent)
        else:
            duration = time.monotonic() - self.submitted_at
            metrics.observe(request.method, status, duration, len(request.body), sent)

    def record(self, request: Request | None, status: int, sent: int) -> None:
        """The exchange that ends now, whole: metrics, access log, its spooled body removed."""
        if self.reactor.metrics is not None:
            self.observe(request, status, sent)
        access = self.reactor.access_log
        if access is not None and request is not None:
            slot = self.slot
            access.write(
                request,
                self.prefix[1].decode() or "-",
                status,
                sent,
                time.monotonic() - self.dispatched_at,
                slot.worker_id if slot else 0,
                slot.pid if slot else 0,
                static=slot is None,
            )
        if self.spooled is not None:
            self.spooled.discard()
            self.spooled = None
