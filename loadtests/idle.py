#!/usr/bin/env python3
"""Open many idle keep-alive connections to one HTTP server, hold them, and count their closes.

Each of ``--connections`` (10,000) connections sends one complete ``GET / HTTP/1.1`` with
``Host: x``, reads the whole response (``Content-Length`` body), and then stays open and silent:
a keep-alive connection between two requests, which is what a real server holds by the
thousand behind a load balancer or for browsers. At most ``--concurrency`` (256) connects and
exchanges are in flight at once during the ramp. Nothing is sent after the first exchange, so the
client is idle (no timer, no wake-up) while it holds them: it costs the measured run nothing.

A connection the server closes (its keep-alive timeout, a connection limit, ``Connection:
close``) is counted with its time (``time.monotonic()``, the system-wide CLOCK_MONOTONIC, so the
harness can place it in its own measured window) and is not reopened: reopening would turn idle
connections into load.

It writes ``ready <open> <failed>`` on stdout once every connection has finished its first
exchange (or ``--ramp-timeout`` passed), then holds the connections until SIGTERM/SIGINT or its
own ``--max-seconds`` deadline, whichever comes first, closes them all, and writes one JSON
document (stdout, or ``--output``): counters, the statuses answered, the closes by the server,
a timeline of how many connections were open, and the client's own CPU time.

Only the standard library is used. Traffic goes to the ``--host`` given (the harness: 127.0.0.1).

Example:
    python3 loadtests/idle.py --port 8000 --connections 10000 --max-seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

REQUEST: Final = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
DEFAULT_CONNECTIONS: Final = 10_000
DEFAULT_CONCURRENCY: Final = 256  # connects + first exchanges in flight during the ramp
EXCHANGE_TIMEOUT_S: Final = 10.0  # connect + first response, per connection
TIMELINE_INTERVAL_S: Final = 0.5
MAX_EVENTS: Final = 20_000  # closes recorded one by one; the counters stay exact beyond it
MAX_HEAD: Final = 16_384  # a response head longer than this is not a hello answer


class IdleConnection(asyncio.Protocol):
    """One connection: a request, its full response, then silence until either side closes."""

    def __init__(self, client: IdleClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.connected_at = 0.0
        self.buffer = b""
        self.status = ""  # the first response's status code, once its head is in
        self.body_left: int | None = None  # bytes of the first response's body still due
        loop = asyncio.get_running_loop()
        self.answered = loop.create_future()  # the first response is complete
        self.closed = loop.create_future()  # connection_lost, with its exception
        self.closed_by_us = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connected_at = time.monotonic()
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return  # nothing more is expected; an unsolicited byte is ignored
        if self.body_left is None:
            self.buffer += data
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._answer("bad response head")
                return
            head, data = self.buffer[:head_end], self.buffer[head_end + 4 :]
            self.buffer = b""
            self.status, self.body_left = parse_head(head)
        self.body_left -= len(data)
        if self.body_left <= 0:
            self._answer("")

    def _answer(self, error: str) -> None:
        if not self.answered.done():
            self.answered.set_result(error)

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._answer("closed before the response was complete")
        if not self.closed.done():
            self.closed.set_result(exc)

    def close(self) -> None:
        self.closed_by_us = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def parse_head(head: bytes) -> tuple[str, int]:
    """The status code of a response head and its body length (0 without Content-Length)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = parts[1].decode() if len(parts) >= 2 and parts[1].isdigit() else "other"
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    return status, length


class IdleClient:
    def __init__(self, host: str, port: int, connections: int, concurrency: int) -> None:
        self.host = host
        self.port = port
        self.connections = connections
        self.open: set[IdleConnection] = set()
        self.stopping = asyncio.Event()
        self.gate = asyncio.Semaphore(concurrency)
        self.exchanged = 0  # connections whose first exchange is over, however it ended
        self.ramp_done = asyncio.Event()
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()  # what the server answered the first request
        self.connect_errors: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []  # closes by the server
        self.timeline: list[tuple[float, int]] = []

    async def slot(self) -> None:
        conn = await self._open()
        self.exchanged += 1
        if self.exchanged == self.connections:
            self.ramp_done.set()
        if conn is None:
            return
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({conn.closed, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            self.open.discard(conn)
        if self.stopping.is_set() and not conn.closed.done():
            conn.close()
            self.counts["closed_by_client"] += 1
            return
        self._record_close(conn, conn.closed.result())

    async def _open(self) -> IdleConnection | None:
        """Connect and do the first exchange; the connection, open and idle, or None."""
        loop = asyncio.get_running_loop()
        protocol: IdleConnection | None = None
        async with self.gate:
            if self.stopping.is_set():
                return None
            try:
                async with asyncio.timeout(EXCHANGE_TIMEOUT_S):
                    _, made = await loop.create_connection(
                        lambda: IdleConnection(self), self.host, self.port
                    )
                    assert isinstance(made, IdleConnection)
                    protocol = made
                    self.counts["connects"] += 1
                    error = await protocol.answered
            except (TimeoutError, OSError) as exc:
                kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                self.connect_errors[kind if protocol is None else f"response {kind}"] += 1
                if protocol is not None:
                    protocol.close()
                return None
        self.statuses[protocol.status or "none"] += 1
        if error:
            self.counts["exchange_failed"] += 1
            protocol.close()
            return None
        self.open.add(protocol)
        return protocol

    def _record_close(self, conn: IdleConnection, exc: BaseException | None) -> None:
        now = time.monotonic()
        kind = "reset" if exc is not None else "fin"
        self.counts[f"closed_by_server_{kind}"] += 1
        if len(self.events) < MAX_EVENTS:
            self.events.append(
                {"t": round(now, 4), "lifetime_s": round(now - conn.connected_at, 3), "kind": kind}
            )

    async def sample(self) -> None:
        while not self.stopping.is_set():
            self.timeline.append((round(time.monotonic(), 3), len(self.open)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), TIMELINE_INTERVAL_S)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = IdleClient(args.host, args.port, args.connections, args.concurrency)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, client.stopping.set)
    by_deadline: list[bool] = []

    def expire() -> None:
        by_deadline.append(True)
        client.stopping.set()

    deadline = loop.call_later(args.max_seconds, expire)
    tasks = [asyncio.ensure_future(client.slot()) for _ in range(args.connections)]
    tasks.append(asyncio.ensure_future(client.sample()))
    ramp = asyncio.ensure_future(client.ramp_done.wait())
    stop = asyncio.ensure_future(client.stopping.wait())
    await asyncio.wait({ramp, stop}, timeout=args.ramp_timeout, return_when=asyncio.FIRST_COMPLETED)
    ramp.cancel()
    ramp_s = time.monotonic() - client.started
    ready_open = len(client.open)
    failed = sum(client.connect_errors.values()) + client.counts["exchange_failed"]
    print(f"ready {ready_open} {failed}", flush=True)
    await stop
    stopped_at = time.monotonic()
    await asyncio.wait(tasks, timeout=10.0)
    for task in tasks:
        task.cancel()
    deadline.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "params": {
            "host": args.host,
            "port": args.port,
            "connections": args.connections,
            "concurrency": args.concurrency,
            "request": REQUEST.decode(),
            "max_seconds": args.max_seconds,
        },
        "started": round(client.started, 4),
        "ramp_s": round(ramp_s, 3),
        "ready_open": ready_open,
        "stopped": round(stopped_at, 4),
        "held_s": round(stopped_at - client.started, 3),
        "stopped_by_deadline": bool(by_deadline),
        "counts": dict(client.counts),
        "statuses": dict(client.statuses),
        "connect_errors": dict(client.connect_errors),
        "server_closes": client.events,
        "timeline": client.timeline,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, required=True)
    add("--connections", type=int, default=DEFAULT_CONNECTIONS)
    add("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="exchanges in flight")
    add("--ramp-timeout", type=float, default=60.0, help="report ready after this at the latest")
    add("--max-seconds", type=float, required=True, help="stop on our own after this long")
    add("--output", help="write the JSON here instead of stdout")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 64:  # the harness raises it already; run on our own too
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=1) + "\n"
    if args.output:
        with open(args.output, "w") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
