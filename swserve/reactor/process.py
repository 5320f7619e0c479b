"""Reactor processes for ``--reactors N``: reactor 0 in the master, 1 … N-1 forked.

Under the GIL, reactors that must run in parallel are processes.  The master
keeps reactor 0 on its own loop (its listeners, signals, the manager's control
lines and /metrics stay where they were) and forks N-1 more before its event
loop exists.  The master accepts every connection and gives it to the reactor
holding the fewest (SWOOLE-MODEL.md §1): its own, or a forked one, passed as
a file descriptor (SCM_RIGHTS).  Every worker links to every reactor, so any
worker serves any reactor's requests; dispatch-to-idle across reactors reads
the shared busy table (``ipc/busy.py``).

Master ↔ reactor i: one SOCK_SEQPACKET socketpair, one control message
(:mod:`swserve.ipc.control`) per datagram; ``docs/control-plane.md`` lists them.

Reactor 0 alone reports what is about workers as a whole (ready, lost, boot
errors, the served count the manager watches, read from each worker's own
count in the shared table): the others would only repeat it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
from dataclasses import dataclass
from typing import Final

from swserve.config import Config
from swserve.ipc import control
from swserve.ipc.control import Mode
from swserve.metrics.collect import reactor_snapshot
from swserve.metrics.requests import GAUGES
from swserve.process.loop import new_event_loop
from swserve.process.shared import ignore_master_signals
from swserve.process.title import set_title
from swserve.protocol.ws_handshake import GOING_AWAY
from swserve.reactor import push_redis
from swserve.reactor.acceptor import Acceptor
from swserve.reactor.core import Reactor
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.worker_link import WorkerLink

log = logging.getLogger("swserve.error")

MAX_FDS: Final = 64  # connections handed over in one message at most
METRICS_EVERY: Final = 0.25  # seconds between metrics snapshots to the master
_FORWARDED: Final = (control.Timeout, control.Idle)  # the other events are reactor 0's


def reactor_count(config: Config) -> int:
    """--reactors, or derived: one reactor per 4 workers, at most half the cores.

    A reactor's event loop keeps up with several workers (it does no app work),
    and each reactor process needs a core of its own to be worth having; on a
    2-core machine that is always 1.
    """
    if config.mode != Mode.PROCESS:
        return 1
    if config.reactors:
        return config.reactors
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores // 2, -(-config.workers // 4)))


@dataclass
class ReactorChild:
    """The master's view of one forked reactor."""

    index: int
    pid: int
    channel: socket.socket
    connections: int = 0  # held, as last reported, plus handed over since
    sent: int = 0  # connections handed over so far
    idle: bool = False


def fork_reactors(
    config: Config,
    ipc_socks: list[socket.socket],
    tls: ssl.SSLContext | None,
    close_in_child: list[socket.socket],
) -> list[ReactorChild]:
    """Fork reactors 1 … len(ipc_socks): before the master's loop or any thread exists.

    ``ipc_socks[i - 1]`` is reactor i's listening socket for worker links.
    """
    children: list[ReactorChild] = []
    for index, ipc_sock in enumerate(ipc_socks, start=1):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                for other in (*close_in_child, *(c.channel for c in children)):
                    other.close()
                for i, sock in enumerate(ipc_socks, start=1):
                    if i != index:
                        sock.close()
                code = serve(config, index, ipc_sock, theirs, tls)
            except BaseException:
                log.exception("reactor %d crashed", index)
            finally:
                os._exit(code)
        theirs.close()
        ipc_sock.close()  # the child listens on it now
        children.append(ReactorChild(index, pid, ours))
    return children


def serve(
    config: Config,
    index: int,
    ipc_sock: socket.socket,
    channel: socket.socket,
    tls: ssl.SSLContext | None,
) -> int:
    """Run reactor ``index`` in this (forked) process until the master says close."""
    ignore_master_signals()
    # A SIGTERM to the whole group (docker stop, systemd) is the master's to act on:
    # it drains us and then says close.  A master that dies closes our channel.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    set_title(f"swserve: reactor {index}")
    if config.cpu_affinity:
        from swserve.process import affinity

        affinity.pin(index + 1)  # reactor i beside worker i (both 1-based in titles)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(ReactorProcess(config, index, channel, tls).main(ipc_sock))
    finally:
        loop.close()


class ReactorProcess:
    def __init__(
        self, config: Config, index: int, channel: socket.socket, tls: ssl.SSLContext | None
    ) -> None:
        self.config = config
        self.index = index
        self.channel = channel
        self.tls = tls
        self.reactor = Reactor(config, on_event=self._on_event, index=index)
        self.done: asyncio.Future[None]
        self._reported = (-1, -1)  # (held, received) last sent to the master
        self._received = 0  # connections the master has handed over

    async def main(self, ipc_sock: socket.socket) -> int:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        reactor = self.reactor
        reactor.start(loop)
        server = await loop.create_unix_server(lambda: WorkerLink(reactor), sock=ipc_sock)
        # --broadcast-url: fan out what other instances publish (reactor 0 publishes ours)
        bridge = push_redis.start(self.config, reactor.push, ipc_sock, publisher=False)
        scheme = "http" if self.tls is None else "https"
        self.acceptor = Acceptor(
            loop,
            [],  # the master accepts; connections arrive over the channel
            lambda: HttpConnection(reactor, scheme),
            lambda: reactor.connections(),
            0,
            ssl=self.tls,
            handshake_timeout=self.config.header_timeout,
        )
        reactor.on_connection_closed = self._count
        acceptor = self.acceptor
        reactor.arriving = lambda: acceptor.handing_over + acceptor.handshaking
        acceptor.on_settled = reactor.check_idle
        self.channel.setblocking(False)
        loop.add_reader(self.channel, self._on_message)
        if reactor.metrics is not None:
            self._send_metrics()
        await self.done
        loop.remove_reader(self.channel)
        reactor.ws.close_all(GOING_AWAY)  # sessions still open get a close frame first
        for conn in list(reactor.sessions.values()):
            conn.transport.abort()
        reactor.stop()
        if bridge is not None:
            bridge.stop()
        server.close()
        if reactor.metrics is not None:
            self._send_metrics(last=True)
        self.channel.close()
        return 0

    def _on_message(self) -> None:
        try:
            message, fds, _, _ = socket.recv_fds(self.channel, 256, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message, fds = b"", []
        if not message:  # the master is gone
            for fd in fds:
                os.close(fd)
            self._finish()
            return
        try:
            command = control.decode(message)
        except control.ControlError as exc:
            log.error("reactor %d: bad control message from the master: %s", self.index, exc)
            command = control.Close()  # nothing it says can be trusted now
        if fds and not isinstance(command, control.Adopt):
            for fd in fds:
                os.close(fd)
        match command:
            case control.Adopt():
                for fd in fds:
                    sock = socket.socket(fileno=fd)
                    sock.setblocking(False)
                    self.acceptor.adopt(sock)
                self._received += len(fds)
                self._count()
            case control.Retire(pid=pid):
                self.reactor.retire(pid)
            case control.Drain():
                self.reactor.drain()
            case control.Close():
                self._finish()
            case _:
                log.error(
                    "reactor %d: the master sent %r, which is not for a reactor",
                    self.index,
                    command,
                )

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _send(self, message: control.Message) -> None:
        with contextlib.suppress(OSError):  # the master is gone: the channel's EOF tells us
            self.channel.send(control.encode(message))

    def _count(self) -> None:
        acceptor = self.acceptor
        count = self.reactor.connections() + acceptor.handshaking + acceptor.handing_over
        if (count, self._received) != self._reported:
            self._reported = (count, self._received)
            self._send(control.Connections(*self._reported))

    def _on_event(self, message: control.Message) -> None:
        if isinstance(message, _FORWARDED):
            self._send(message)

    def _send_metrics(self, last: bool = False) -> None:
        reactor = self.reactor
        assert reactor.metrics is not None
        snapshot = reactor_snapshot(reactor)
        if last:  # a reactor that is gone holds nothing: its counters only
            snapshot = {k: v for k, v in snapshot.items() if k not in GAUGES}
        self._send(control.MetricsSnapshot(snapshot))
        if not last and not self.done.done():
            asyncio.get_running_loop().call_later(METRICS_EVERY, self._send_metrics)
