"""A small bounded load loop for life-cycle tests: N keep-alive clients on raw sockets.

Each client keeps one connection open and sends requests one after another,
recording every status, every failure, and whether its connection was ever
closed by the server (after an error, or cleanly with ``Connection: close``).
It stops when told to, or at its deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from tests.helpers import ResponseReader


@dataclass
class Client:
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0  # after an error
    closed: int = 0  # the server said Connection: close (and the client reconnected)


class Load:
    def __init__(
        self, port: int, clients: int = 8, path: str = "/", deadline: float = 30.0
    ) -> None:
        self.port = port
        self.path = path
        self.deadline = time.monotonic() + deadline
        self.stop_event = threading.Event()
        self.clients = [Client() for _ in range(clients)]
        self.threads = [
            threading.Thread(target=self._run, args=(c,), daemon=True) for c in self.clients
        ]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)

    def _run(self, client: Client) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        sock: socket.socket | None = None
        reader: ResponseReader | None = None
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    reader = ResponseReader(sock)
                assert reader is not None
                sock.sendall(request)
                response = reader.read()
                client.statuses.append(response.status)
                client.bodies.append(response.body)
                if response.header("connection") == "close":
                    # as a real client does: a fresh connection for the next request
                    client.closed += 1
                    sock.close()
                    sock, reader = None, None
            except (OSError, EOFError, AssertionError) as exc:
                client.errors.append(repr(exc))
                client.reconnects += 1
                if sock is not None:
                    sock.close()
                sock, reader = None, None
        if sock is not None:
            sock.close()

    @property
    def total(self) -> int:
        return sum(len(c.statuses) for c in self.clients)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Wait until at least ``count`` responses in all (polling the counters)."""
        deadline = time.monotonic() + timeout
        while self.total < count:
            assert time.monotonic() < deadline, f"only {self.total} responses"
            time.sleep(0.01)

    def failures(self) -> list[str]:
        out = []
        for i, c in enumerate(self.clients):
            bad = [s for s in c.statuses if s != 200]
            if bad or c.errors:
                out.append(f"client {i}: statuses {bad[:5]} errors {c.errors[:3]}")
        return out
