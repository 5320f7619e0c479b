#!/usr/bin/env python3
"""A cheap raw-socket WebSocket client for the load tests: echo load, or idle sessions held open.

Cheap, so that the server and not the client is what a point measures: frames are built and
masked once, before the run (the mask is the same for every send of a frame: the server
unmasks whatever it gets), and the replies (server frames are not masked) are parsed for their
header only, their payload is skipped by counting, except a ping's (answered with a pong) and
each session's first reply (compared with what was sent). It runs on asyncio, on uvloop when
the interpreter has it, and one command runs one process; ``ws_echo.py`` and ``ws_idle.py``
start several, pinned to the load CPU.

``echo``: opens ``--connections`` sessions (the opening handshake, the accept key checked),
prints ``ready <open> <failed>``, then waits for ``go <start> <end>`` on stdin (two
``time.monotonic()`` values: CLOCK_MONOTONIC, the same clock in every process). From the ``go``
on, each session sends a message, waits for its echo and sends the next, closed loop, until
``<end>``; the echoes completed between ``<start>`` and ``<end>`` are counted, with their round
trip times (a histogram in 2 % steps) and the client's own CPU time over that window. Then it
closes every session (close 1000, waiting briefly for the server's close) and writes one JSON
document on stdout.

``idle``: opens ``--connections`` sessions, each doing one echo round trip (so the app's
coroutine is running and has received a message), prints ``ready <open> <failed>`` and then
holds them silent (answering the server's pings) until stdin is closed or says ``stop``; then it
closes them and writes its JSON (the sessions the server closed while held, by close code).

Only 127.0.0.1 is the harness's target; only the standard library is needed (uvloop is used if
importable).

Example:
    python3 -m loadtests.wsclient echo --port 8000 --connections 128 --sizes 32,64,96,128
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
CONNECT_CONCURRENCY: Final = 128  # handshakes in flight at once
HANDSHAKE_TIMEOUT_S: Final = 20.0
CLOSE_WAIT_S: Final = 2.0
DRAIN_WAIT_S: Final = 2.0  # after <end>: replies still in flight (not counted)
BUCKET_BASE: Final = 1.02  # latency histogram: 2 % steps from 1 µs


def masked_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One FIN frame from the client: the header with the mask bit, the key, the masked payload."""
    mask = mask if mask is not None else os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


def handshake(host: str, port: int, path: str = "/") -> tuple[bytes, bytes]:
    """The opening handshake request and the ``Sec-WebSocket-Accept`` value it must get back."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 (the RFC's hash)
    request = (
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    return request, accept


def bucket(latency_s: float) -> int:
    return max(0, int(math.log(max(latency_s * 1e6, 1.0), BUCKET_BASE)))


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in ms of a merged histogram (the bucket's upper edge)."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(BUCKET_BASE ** (index + 1) / 1000, 3)
    return None


class Session(asyncio.Protocol):
    """One WebSocket session: the handshake, then frames parsed header by header."""

    def __init__(self, client: Client, request: bytes, accept: bytes) -> None:
        self.client = client
        self.request = request
        self.accept = accept
        self.transport: asyncio.Transport | None = None
        self.open = False
        loop = asyncio.get_running_loop()
        self.handshaken: asyncio.Future[str] = loop.create_future()  # "" or why it failed
        self.closed: asyncio.Future[None] = loop.create_future()
        self.head = b""
        self.pending = b""  # an incomplete frame header
        self.skip = 0  # payload bytes of the current frame still to come
        self.opcode = 0
        self.fin = False
        self.collect: bytearray | None = None  # where the current frame's payload goes, if kept
        self.data = bytearray()  # the first message's payload (verified)
        self.control = bytearray()  # the current control frame's payload
        self.message_len = 0
        self.verify = True  # compare the first echo with what was sent
        self.close_code: int | None = None
        self.sent_at = 0.0
        self.next_frame = 0
        self.expected = b""

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not a subclass of asyncio.Transport: no isinstance)
        stream: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = stream
        stream.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            status = head.split(b" ", 2)[1] if head.count(b" ") else b""
            if status != b"101" or self.accept not in head:
                self._handshake_done(f"handshake answered {head[:60]!r}")
                return
            self.open = True
            self._handshake_done("")
            if not data:
                return
        self._feed(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._handshake_done(f"closed during the handshake: {exc}")
        if not self.closed.done():
            self.closed.set_result(None)
        self.client.lost(self)

    # --- frames ---------------------------------------------------------------------------------

    def _handshake_done(self, error: str) -> None:
        if not self.handshaken.done():
            self.handshaken.set_result(error)
            if error and self.transport is not None:
                self.transport.close()

    def _feed(self, data: bytes) -> None:
        if self.pending:
            data, self.pending = self.pending + data, b""
        pos, end = 0, len(data)
        while pos < end:
            if self.skip:
                take = min(self.skip, end - pos)
                if self.collect is not None:
                    self.collect += data[pos : pos + take]
                self.skip -= take
                pos += take
                if self.skip:
                    return
                self._frame_done()
                continue
            if end - pos < 2:
                self.pending = data[pos:]
                return
            b0, b1 = data[pos], data[pos + 1] & 0x7F
            size, header = b1, 2
            if b1 == 126:
                header = 4
            elif b1 == 127:
                header = 10
            if end - pos < header:
                self.pending = data[pos:]
                return
            if header > 2:
                size = int.from_bytes(data[pos + 2 : pos + header], "big")
            pos += header
            self.fin, self.opcode = bool(b0 & 0x80), b0 & 0x0F
            if self.opcode >= CLOSE:  # a control frame (it may come between two fragments)
                self.collect = self.control = bytearray()
            else:
                self.message_len += size
                self.collect = self.data if self.verify else None
            self.skip = size
            if size == 0:
                self._frame_done()

    def _frame_done(self) -> None:
        opcode = self.opcode
        if opcode >= CLOSE:
            body = bytes(self.control)
            if opcode == PING:
                self.send(masked_frame(PONG, body))
            elif opcode == CLOSE:
                self.close_code = int.from_bytes(body[:2], "big") if len(body) >= 2 else 1005
                self.client.closed_by_server(self)
                if self.transport is not None:
                    self.transport.close()
            return
        if not self.fin:
            return  # a fragment: the message goes on
        size, self.message_len = self.message_len, 0
        if self.verify:
            self.verify = False
            if bytes(self.data) != self.expected:
                self.client.mismatch(self, size)
                return
        self.client.echoed(self, size)

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def close(self) -> None:
        self.send(masked_frame(CLOSE, (1000).to_bytes(2, "big")))


class Client:
    """Many sessions to one server: the echo loop or the idle hold, and the counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sessions: list[Session] = []
        self.counts: Counter[str] = Counter()
        self.server_closes: Counter[str] = Counter()
        self.histogram: Counter[int] = Counter()
        self.frames: list[tuple[bytes, bytes, int]] = []  # (frame, payload, size)
        self.window = (math.inf, math.inf)
        self.sending = False
        self.stopped = asyncio.Event()

    async def connect_all(self) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def one() -> None:
            async with gate:
                request, accept = handshake(self.args.host, self.args.port, self.args.path)
                try:
                    _, session = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: Session(self, request, accept), self.args.host, self.args.port
                        ),
                        HANDSHAKE_TIMEOUT_S,
                    )
                    error = await asyncio.wait_for(session.handshaken, HANDSHAKE_TIMEOUT_S)
                except (OSError, TimeoutError) as exc:
                    self.counts[f"connect failed: {type(exc).__name__}"] += 1
                    return
                if error:
                    self.counts[f"handshake failed: {error[:80]}"] += 1
                    return
                self.sessions.append(session)

        await asyncio.gather(*(one() for _ in range(self.args.connections)))

    # --- the echo loop --------------------------------------------------------------------------

    def prepare(self, sizes: Sequence[int], opcode: int) -> None:
        for size in sizes:
            payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
            if opcode == BINARY:
                payload = os.urandom(size)
            self.frames.append((masked_frame(opcode, payload), payload, size))

    def send_next(self, session: Session) -> None:
        frame, payload, _size = self.frames[session.next_frame % len(self.frames)]
        session.next_frame += 1
        session.expected = payload
        session.sent_at = time.monotonic()
        session.send(frame)
        self.counts["sent"] += 1

    def echoed(self, session: Session, size: int) -> None:
        now = time.monotonic()
        start, end = self.window
        if start <= now <= end:
            self.counts["echoed"] += 1
            self.counts["echoed_bytes"] += size
            self.histogram[bucket(now - session.sent_at)] += 1
        if self.sending and now < end:
            self.send_next(session)
        else:
            self.counts["done"] += 1

    def mismatch(self, session: Session, size: int) -> None:
        self.counts["echo mismatch"] += 1
        self.echoed(session, size)

    def closed_by_server(self, session: Session) -> None:
        self.server_closes[str(session.close_code)] += 1

    def lost(self, session: Session) -> None:
        if session.open and not self.stopped.is_set():
            self.counts["lost while running"] += 1

    async def echo(self, start: float, end: float) -> dict[str, Any]:
        self.window = (start, end)
        loop = asyncio.get_running_loop()
        usage: dict[str, float] = {}

        def snapshot(name: str) -> None:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            usage[name] = ru.ru_utime + ru.ru_stime
            usage[name + "_at"] = time.monotonic()

        loop.call_later(max(0.0, start - time.monotonic()), snapshot, "start")
        loop.call_later(max(0.0, end - time.monotonic()), snapshot, "end")
        self.sending = True
        for session in self.sessions:
            self.send_next(session)
        await asyncio.sleep(max(0.0, end - time.monotonic()) + 0.01)
        self.sending = False
        await asyncio.sleep(DRAIN_WAIT_S if self.counts["done"] < len(self.sessions) else 0)
        cpu = usage.get("end", 0.0) - usage.get("start", 0.0)
        return {
            "window_s": round(end - start, 4),
            "client_cpu_s": round(cpu, 4),
            "histogram": {str(k): v for k, v in sorted(self.histogram.items())},
        }

    async def close_all(self) -> None:
        self.stopped.set()
        for session in self.sessions:
            session.close()
        waits = [s.closed for s in self.sessions]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_WAIT_S)
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()

    # --- the idle hold --------------------------------------------------------------------------

    async def first_echo(self) -> None:
        """Every session does one round trip, so that the app has accepted and received."""
        self.prepare([32], TEXT)
        self.window = (0.0, math.inf)
        for session in self.sessions:
            self.send_next(session)
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while self.counts["done"] < len(self.sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    client = Client(args)
    started = time.monotonic()
    await client.connect_all()
    result: dict[str, Any] = {"connections": args.connections, "open": len(client.sessions)}
    if args.command == "idle":
        await client.first_echo()
    result["ramp_s"] = round(time.monotonic() - started, 3)
    failed = args.connections - len(client.sessions)
    print(f"ready {len(client.sessions)} {failed}", flush=True)
    line = await read_line()
    if args.command == "echo" and line.startswith("go "):
        client.prepare([int(s) for s in args.sizes.split(",")], BINARY if args.binary else TEXT)
        start, end = (float(value) for value in line.split()[1:3])
        result.update(await client.echo(start, end))
    else:  # idle: held until stdin says stop or closes
        result["held_open"] = sum(1 for s in client.sessions if not s.closed.done())
    await client.close_all()
    result["counts"] = dict(client.counts)
    result["server_closes"] = dict(client.server_closes)
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("echo", "idle"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sizes", default="64", help="payload sizes, cycled (echo)")
    parser.add_argument("--binary", action="store_true", help="binary messages (else text)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop  # optional: the cheaper loop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(main_async(args))
    result["loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
