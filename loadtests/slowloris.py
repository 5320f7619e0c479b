#!/usr/bin/env python3
"""Hold many slowloris connections open against one HTTP server, and count what the server did.

Each of ``--connections`` (500) slots opens a TCP connection, sends a partial request head,
``GET / HTTP/1.1\\r\\nHost: x\\r\\n``, and then one more byte of a header that never ends the
head (``X-a: b\\r\\n``, over and over) every ``--interval`` (1 s), with a random phase per
connection so the trickle is spread evenly over time. When the server closes a connection (after
answering, say, 408, or without a word) the slot counts it and reconnects at once; a failed
connect is retried after a short back-off.

It writes ``ready <open> <failed connects>`` on stdout once every slot has connected once (or
``--ramp-timeout`` passed), then holds the connections until SIGTERM/SIGINT or its own
``--max-seconds`` deadline, whichever comes first, closes them all, and writes one JSON document
(stdout, or ``--output``): counters, every close by the server with its time
(``time.monotonic()``, the system-wide CLOCK_MONOTONIC, so the harness can place it in its own
measured window) and how long the connection had lived, a timeline of how many connections were
open, and the client's own CPU time.

The client is almost always asleep: per second it writes one byte per connection.

Only the standard library is used. Traffic goes to the ``--host`` given (the harness: 127.0.0.1).

Example:
    python3 loadtests/slowloris.py --port 8000 --connections 500 --max-seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

HEAD: Final = b"GET / HTTP/1.1\r\nHost: x\r\n"
TRICKLE: Final = b"X-a: b\r\n"  # a header sent one byte at a time, forever; the head never ends
DEFAULT_CONNECTIONS: Final = 500
DEFAULT_INTERVAL_S: Final = 1.0
CONNECT_TIMEOUT_S: Final = 3.0
CONNECT_CONCURRENCY: Final = 64  # connects in flight during the ramp
RECONNECT_DELAY_S: Final = 0.05  # after the server closed us: at once, but never a hot loop
RETRY_DELAY_S: Final = 0.5  # after a failed connect
TIMELINE_INTERVAL_S: Final = 0.5
TRICKLE_BUCKETS: Final = 20  # connections are spread over this many wake-ups per interval
MAX_EVENTS: Final = 20_000  # closes recorded one by one; the counters stay exact beyond it


class SlowConnection(asyncio.Protocol):
    """One connection: the partial head at once, then a byte per interval until closed."""

    def __init__(self, client: SlowlorisClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.connected_at = 0.0
        self.received = b""
        self.bucket: set[SlowConnection] | None = None  # the client's trickle slot we are in
        self.sent = 0  # bytes of TRICKLE sent so far
        self.closed_by_us = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connected_at = time.monotonic()
        transport.write(HEAD)
        self.client.bytes_sent += len(HEAD)
        self.bucket = random.choice(self.client.buckets)  # spreads the trickle over time
        self.bucket.add(self)

    def trickle(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        index = self.sent % len(TRICKLE)
        self.transport.write(TRICKLE[index : index + 1])
        self.sent += 1
        self.client.bytes_sent += 1

    def data_received(self, data: bytes) -> None:
        if len(self.received) < 256:
            self.received += data[: 256 - len(self.received)]

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.bucket is not None:
            self.bucket.discard(self)
        if not self.closed.done():
            self.closed.set_result(exc)

    def close(self) -> None:
        self.closed_by_us = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def status_of(received: bytes) -> str:
    """The status code the server answered (``HTTP/1.1 408 ...``: "408"), "none" or "other"."""
    if not received:
        return "none"
    parts = received.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return parts[1].decode()
    return "other"


class SlowlorisClient:
    def __init__(self, host: str, port: int, connections: int, interval_s: float) -> None:
        self.host = host
        self.port = port
        self.connections = connections
        self.interval_s = interval_s
        self.open: set[SlowConnection] = set()
        # one wake-up per bucket rather than a timer per connection: far less CPU
        self.buckets: list[set[SlowConnection]] = [set() for _ in range(TRICKLE_BUCKETS)]
        self.stopping = asyncio.Event()
        self.connect_gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.connected_once = 0
        self.ramp_done = asyncio.Event()
        self.started = time.monotonic()
        self.bytes_sent = 0
        self.counts: Counter[str] = Counter()  # connects, reconnects, closes by kind
        self.statuses: Counter[str] = Counter()  # what the server answered before closing
        self.connect_errors: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []  # closes by the server
        self.timeline: list[tuple[float, int]] = []

    async def slot(self) -> None:
        first = True
        while not self.stopping.is_set():
            conn = await self._connect()
            if conn is None:
                await self._sleep(RETRY_DELAY_S)
                continue
            self.counts["connects"] += 1
            if first:
                first = False
                self.connected_once += 1
                if self.connected_once == self.connections:
                    self.ramp_done.set()
            else:
                self.counts["reconnects"] += 1
            self.open.add(conn)
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                await asyncio.wait({conn.closed, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                self.open.discard(conn)
            if self.stopping.is_set() or conn.closed_by_us:  # our close, not the server's
                conn.close()
                self.counts["closed_by_client"] += 1
                return
            self._record_close(conn, conn.closed.result())
            await self._sleep(RECONNECT_DELAY_S)

    async def _connect(self) -> SlowConnection | None:
        loop = asyncio.get_running_loop()
        async with self.connect_gate:
            if self.stopping.is_set():
                return None
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(lambda: SlowConnection(self), self.host, self.port),
                    CONNECT_TIMEOUT_S,
                )
            except TimeoutError:
                self.connect_errors["timeout"] += 1
                return None
            except OSError as exc:
                self.connect_errors[type(exc).__name__] += 1
                return None
        assert isinstance(protocol, SlowConnection)
        return protocol

    def _record_close(self, conn: SlowConnection, exc: BaseException | None) -> None:
        now = time.monotonic()
        kind = "reset" if exc is not None else "fin"
        status = status_of(conn.received)
        self.counts[f"closed_by_server_{kind}"] += 1
        self.statuses[status] += 1
        if len(self.events) < MAX_EVENTS:
            self.events.append(
                {
                    "t": round(now, 4),
                    "lifetime_s": round(now - conn.connected_at, 3),
                    "kind": kind,
                    "status": status,
                    "bytes_sent": len(HEAD) + conn.sent,
                }
            )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def trickle(self) -> None:
        """Every interval / TRICKLE_BUCKETS, one more byte on every connection of one bucket."""
        step = self.interval_s / len(self.buckets)
        due = time.monotonic()
        tick = 0
        while not self.stopping.is_set():
            due += step
            await self._sleep(max(0.0, due - time.monotonic()))
            tick += 1
            for conn in list(self.buckets[tick % len(self.buckets)]):
                conn.trickle()

    async def sample(self) -> None:
        while not self.stopping.is_set():
            self.timeline.append((round(time.monotonic(), 3), len(self.open)))
            await self._sleep(TIMELINE_INTERVAL_S)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = SlowlorisClient(args.host, args.port, args.connections, args.interval)
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
    tasks.append(asyncio.ensure_future(client.trickle()))
    ramp = asyncio.ensure_future(client.ramp_done.wait())
    stop = asyncio.ensure_future(client.stopping.wait())
    await asyncio.wait({ramp, stop}, timeout=args.ramp_timeout, return_when=asyncio.FIRST_COMPLETED)
    ramp.cancel()
    ramp_s = time.monotonic() - client.started
    ready_open = len(client.open)
    print(f"ready {ready_open} {sum(client.connect_errors.values())}", flush=True)
    await stop
    stopped_at = time.monotonic()
    for conn in list(client.open):
        conn.close()
    await asyncio.wait(tasks, timeout=5.0)
    for task in tasks:
        task.cancel()
    deadline.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "params": {
            "host": args.host,
            "port": args.port,
            "connections": args.connections,
            "interval_s": args.interval,
            "head": HEAD.decode(),
            "trickle": TRICKLE.decode(),
            "max_seconds": args.max_seconds,
        },
        "started": round(client.started, 4),
        "ramp_s": round(ramp_s, 3),
        "ready_open": ready_open,
        "stopped": round(stopped_at, 4),
        "held_s": round(stopped_at - client.started, 3),
        "stopped_by_deadline": bool(by_deadline),
        "connected_once": client.connected_once,
        "counts": dict(client.counts),
        "statuses_before_server_close": dict(client.statuses),
        "connect_errors": dict(client.connect_errors),
        "bytes_sent": client.bytes_sent,
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
    add("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between bytes")
    add("--ramp-timeout", type=float, default=15.0, help="report ready after this at the latest")
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
