#!/usr/bin/env python3
"""Broadcast fan-out: one message to N WebSocket sessions over 4 workers (issue #13).

Two stacks serve the same app (``loadtests/apps/broadcast_app.py``):

* ``swserve``: ``swserve.abroadcast`` (one IPC frame, fan-out in the reactor), no Redis;
* ``uvicorn+broadcaster``: uvicorn with 4 workers and the ``broadcaster`` package over a
  local ``redis-server`` (what users run today to reach clients held by other workers).

For each N (1,000 and 10,000), one client process opens N sessions (raw RFC 6455, no
compression, pongs answered) and waits until each is subscribed; then ``--messages``
broadcasts are sent one after another (``GET /send?m=SEQ:T0``), each waiting until every
session has it.  Measured: the delivery time of every message to every session (T0 → the
frame read by the client) as p50/p99, and the CPU time of the server's process tree
(``/proc``, through ``loadtests/run/``) per delivered message; for the Redis stack
redis-server's own CPU is reported beside it and counted in the setup's total.  The bar:
swserve delivers at least 3 times more messages per CPU second.

Run under the bench lock, e.g.::

    flock /tmp/swserve-bench.lock python3 -m loadtests.broadcast
    flock /tmp/swserve-bench.lock python3 -m loadtests.broadcast --sessions 1000 --messages 5

Only loopback.  The anchors venv is ``loadtests/run/``'s, plus ``broadcaster[redis]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from loadtests import run as harness

HOST: Final = "127.0.0.1"
WORKERS: Final = 4
CONCURRENCY: Final = 200  # handshakes in flight while the sessions open
HANDSHAKE: Final = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: " + base64.b64encode(b"0123456789abcdef").decode() + "\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
).encode()
REPO: Final = Path(__file__).resolve().parents[1]


class Client(asyncio.Protocol):
    """One session: the handshake, then server frames parsed by hand (unmasked, small)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.buf = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(HANDSHAKE)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    self.ready.set_exception(RuntimeError(buf[:60].decode(errors="replace")))
                return
            self.upgraded = True
            buf = buf[end + 4 :]
        pos = 0
        now = time.monotonic()
        while len(buf) - pos >= 2:
            opcode = buf[pos] & 0x0F
            size = buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if len(buf) - pos < head + size:
                break
            payload = buf[pos + head : pos + head + size]
            pos += head + size
            if opcode == 0x9 and self.transport is not None:  # ping → pong (masked, key 0)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 0x1:
                if payload == b"ready":
                    if not self.ready.done():
                        self.ready.set_result(None)
                else:
                    self.bench.delivered(payload, now)
        self.buf = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))


class Bench:
    def __init__(self, port: int, sessions: int) -> None:
        self.port = port
        self.sessions = sessions
        self.clients: list[Client] = []
        self.delays: list[float] = []
        self.got: dict[int, int] = {}
        self.waiter: asyncio.Future[None] | None = None
        self.seq = -1

    def delivered(self, payload: bytes, now: float) -> None:
        seq, _, t0 = payload.partition(b":")
        number = int(seq)
        self.delays.append(now - float(t0))
        count = self.got[number] = self.got.get(number, 0) + 1
        waiter = self.waiter
        if number == self.seq and count == self.sessions and waiter and not waiter.done():
            waiter.set_result(None)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with gate:
                _, client = await loop.create_connection(lambda: Client(self), HOST, self.port)
                self.clients.append(client)
                await asyncio.wait_for(client.ready, 60)

        await asyncio.gather(*(one() for _ in range(self.sessions)))

    async def send(self, seq: int) -> float:
        """One broadcast; → seconds until every session had it."""
        self.seq = seq
        self.waiter = asyncio.get_running_loop().create_future()
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection(HOST, self.port)
        writer.write(f"GET /send?m={seq}:{t0!r} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await asyncio.wait_for(self.waiter, 60)
        return time.monotonic() - t0

    def close(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                client.transport.abort()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = harness.free_port()
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    with harness.session(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield port, proc


def server_argv(stack: str, port: int) -> list[str]:
    app = "loadtests.apps.broadcast_app:app"
    if stack == "swserve":
        return [
            str(harness.VENV_BIN / "swserve"), app, "--workers", str(WORKERS),
            "--bind", f"{HOST}:{port}", "--max-connections", "0", "--log-level", "warning",
        ]  # fmt: skip
    return [
        str(harness.VENV_BIN / "uvicorn"), app, "--workers", str(WORKERS), "--host", HOST,
        "--port", str(port), "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip


def measure(stack: str, sessions: int, messages: int, log_dir: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack_ctx:
        env = harness.server_env()
        env["PYTHONPATH"] = str(REPO)
        env["BROADCAST_BACKEND"] = "swserve" if stack == "swserve" else "broadcaster"
        redis_proc: subprocess.Popen[bytes] | None = None
        if stack != "swserve":
            redis_port, redis_proc = stack_ctx.enter_context(redis_server())
            env["BROADCAST_URL"] = f"redis://{HOST}:{redis_port}"
        port = harness.free_port()
        log_path = log_dir / f"broadcast-{stack}-{sessions}.log"
        log_file = stack_ctx.enter_context(log_path.open("w"))
        proc = stack_ctx.enter_context(
            harness.session(
                server_argv(stack, port), cwd=REPO, env=env, stdout=log_file, stderr=log_file
            )
        )
        harness.wait_ready(proc, log_path, port, "", "/", 60)
        return asyncio.run(_drive(port, sessions, messages, proc.pid, redis_proc))


async def _drive(
    port: int, sessions: int, messages: int, pid: int, redis: subprocess.Popen[bytes] | None
) -> dict[str, Any]:
    bench = Bench(port, sessions)
    started = time.monotonic()
    await bench.open()
    opened = time.monotonic() - started
    for seq in range(2):  # warm-up, not measured
        await bench.send(seq)
    bench.delays.clear()
    cpu0, user0, _ = harness.tree_ticks(pid)
    redis0 = harness.tree_cpu(redis.pid)[0] if redis is not None else 0.0
    walls = [await bench.send(seq) for seq in range(2, 2 + messages)]
    cpu1, user1, _ = harness.tree_ticks(pid)
    cpu = cpu1 - cpu0
    redis_cpu = (harness.tree_cpu(redis.pid)[0] - redis0) if redis is not None else 0.0
    bench.close()
    delivered = len(bench.delays)
    return {
        "sessions": sessions,
        "messages": messages,
        "delivered": delivered,
        "open_s": round(opened, 2),
        "fanout_wall_ms_median": round(statistics.median(walls) * 1e3, 2),
        "delivery_p50_ms": round(percentile(bench.delays, 0.5) * 1e3, 2),
        "delivery_p99_ms": round(percentile(bench.delays, 0.99) * 1e3, 2),
        "server_cpu_s": round(cpu, 3),
        "server_user_cpu_s": round(user1 - user0, 3),
        "redis_cpu_s": round(redis_cpu, 3),
        "cpu_us_per_message": round((cpu + redis_cpu) / delivered * 1e6, 2),
        "messages_per_cpu_s": round(delivered / max(cpu + redis_cpu, 1e-9)),
        "messages_per_server_cpu_s": round(delivered / max(cpu, 1e-9)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1000,10000", help="N values (1000,10000)")
    parser.add_argument("--messages", type=int, default=50, help="broadcasts per point (50)")
    parser.add_argument("--stacks", default="swserve,uvicorn+broadcaster")
    parser.add_argument("--no-install", action="store_true", help="use the anchors venv as is")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    stacks = args.stacks.split(",")
    failure = harness.ensure_venv(no_install=args.no_install, with_swserve="swserve" in stacks)
    if failure:
        raise SystemExit(failure)
    if "uvicorn+broadcaster" in stacks and not args.no_install:
        result = harness.pip_install("broadcaster[redis]")
        if result.returncode != 0:
            raise SystemExit(f"pip could not install broadcaster:\n{harness.tail(result.stderr)}")
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    results = []
    for n in (int(v) for v in args.sessions.split(",")):
        for stack in stacks:
            harness.log(f"{stack}: {n} sessions, {args.messages} broadcasts ...")
            point = {"stack": stack, **measure(stack, n, args.messages, log_dir)}
            harness.log(json.dumps(point))
            results.append(point)
    print("\n| stack | N | p50 ms | p99 ms | CPU µs/msg | msgs per CPU s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for point in results:
        base = next(
            (p for p in results if p["stack"] != "swserve" and p["sessions"] == point["sessions"]),
            None,
        )
        ratio = (
            f"{point['messages_per_cpu_s'] / base['messages_per_cpu_s']:.1f}x"
            if base and base["messages_per_cpu_s"]
            else "-"
        )
        print(
            f"| {point['stack']} | {point['sessions']} | {point['delivery_p50_ms']} "
            f"| {point['delivery_p99_ms']} | {point['cpu_us_per_message']} "
            f"| {point['messages_per_cpu_s']} | {ratio} |"
        )
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
