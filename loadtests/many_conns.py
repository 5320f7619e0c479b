"""Hold N keep-alive connections to one server at once: the client of soak.py's waves.

One asyncio event loop (uvloop when installed) over raw non-blocking sockets, a
few hundred bytes per connection, so one process holds 10,000 connections
(threads or ``selectors`` with per-connection state topped out near 1,300 in
the first soak).  Connections are opened with at most ``--connecting`` connects
in flight (a burst of 10,000 SYNs overflows the listen backlog and each dropped
one waits a second or more for its retransmit), each sends one request and
reads its answer, and waits until every connection of the wave is open.  It
prints ``held N`` then, keeps them all open for ``--hold`` seconds while each
sends ``--requests`` more requests on its connection, spread over the hold,
closes them all and prints one JSON line with what happened.

    python3 -m loadtests.many_conns --port 8000 --connections 10000 --hold 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"


class Wave:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.addr = ("127.0.0.1", args.port)
        self.open = 0
        self.peak = 0
        self.answered = 0
        self.failed = 0  # connections that could not open
        self.held_at = 0.0
        self.errors: dict[str, int] = {}
        self.all_open: asyncio.Event
        self.release: asyncio.Event

    def _error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    async def _request(self, sock: socket.socket, buf: bytearray) -> None:
        """One request and its whole answer (Content-Length framed) on ``sock``."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, REQUEST)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(buf[:end]).lower()
                status = head[9:12]
                if status != b"200":
                    name = f"status {status.decode(errors='replace')}"
                    self.errors[name] = self.errors.get(name, 0) + 1
                start = head.find(b"content-length:")
                length = int(head[start + 15 :].split(b"\r\n", 1)[0]) if start >= 0 else 0
                if len(buf) >= end + 4 + length:
                    del buf[: end + 4 + length]
                    self.answered += 1
                    return
            data = await loop.sock_recv(sock, 4096)
            if not data:
                raise ConnectionResetError("closed by the server")
            buf += data

    async def _one(self, connecting: asyncio.Semaphore, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        buf = bytearray()
        counted = False
        try:
            async with connecting:
                await asyncio.wait_for(loop.sock_connect(sock, self.addr), 60)
                await asyncio.wait_for(self._request(sock, buf), 60)
            self.open += 1
            counted = True
            self.peak = max(self.peak, self.open)
            self._settled()
            await self.all_open.wait()
            hold, count = self.args.hold, self.args.requests
            for k in range(count):  # spread over the hold: keep-alive traffic on every one
                at = hold * (k + rng.random()) / max(1, count)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.release.wait(), max(0.0, at - self._held_for()))
                if self.release.is_set():
                    break
                await asyncio.wait_for(self._request(sock, buf), 60)
            await self.release.wait()
        except (OSError, TimeoutError, ValueError) as exc:
            self._error(exc)
            if not counted:
                self.failed += 1
                self._settled()
        finally:
            if counted:
                self.open -= 1
            sock.close()

    def _settled(self) -> None:
        """Every connection of the wave is open, or has failed to: the hold starts."""
        if not self.all_open.is_set() and self.open + self.failed >= self.args.connections:
            self.held_at = time.monotonic()
            self.all_open.set()

    def _held_for(self) -> float:
        return time.monotonic() - self.held_at

    async def run(self) -> dict[str, object]:
        args = self.args
        self.all_open = asyncio.Event()
        self.release = asyncio.Event()
        rng = random.Random(args.seed)
        connecting = asyncio.Semaphore(args.connecting)
        started = time.monotonic()
        tasks = [asyncio.ensure_future(self._one(connecting, rng)) for _ in range(args.connections)]
        await self.all_open.wait()
        open_s = time.monotonic() - started
        print(f"held {self.open}", flush=True)
        await asyncio.sleep(args.hold)
        self.release.set()
        await asyncio.gather(*tasks)
        return {"connections": args.connections, "peak_open": self.peak,
                "open_s": round(open_s, 2), "answered": self.answered,
                "errors": self.errors}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--connecting", type=int, default=256, help="connects in flight")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds all are held")
    parser.add_argument("--requests", type=int, default=2, help="per connection while held")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.connections + 256)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if args.connections + 64 > want:
        print(f"RLIMIT_NOFILE hard limit {hard} is too low", file=sys.stderr)
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(Wave(args).run())
    print(json.dumps(result), flush=True)
    return 0 if result["peak_open"] == args.connections and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
