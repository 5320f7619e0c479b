"""--reactors N: a reactor process killed with SIGKILL loses only its own connections.

The master respawns it on the same worker-link socket; the workers link to the
new reactor again, and the server keeps answering.  A second kill recovers too.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Server, Starter
from tests.integration.test_control import eventually

CLIENTS = 6  # keep-alive connections: 3 on reactor 0 (the master's), 3 on reactor 1


def reactor_pids(server: Server) -> list[int]:
    return [p for p, t in server.children().items() if t.startswith("swserve: reactor")]


def client_ports(pid: int, port: int) -> set[int]:
    """The client-side ports of the connections to ``port`` that process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if inode in inodes and int(local.rsplit(":", 1)[1], 16) == port:
                ports.add(int(remote.rsplit(":", 1)[1], 16))
    return ports


class KeepAlive(threading.Thread):
    """One client on one keep-alive connection, sending requests until told to stop."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = connect(port, timeout=10)
        self.reader = ResponseReader(self.sock)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.served = 0
        self.error = ""  # why its connection failed, if it did
        self.progress = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.request()  # the connection is placed, and served once, before the load

    def request(self) -> None:
        self.sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        response = self.reader.read()
        if response.status != 200:
            raise AssertionError(f"status {response.status}")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.request()
            except (OSError, EOFError, AssertionError, ValueError) as exc:
                with self.progress:
                    self.error = type(exc).__name__ or "closed"
                    self.progress.notify_all()
                return
            with self.progress:
                self.served += 1
                self.progress.notify_all()

    def wait_served(self, count: int, timeout: float = 20.0) -> bool:
        """Until it has served ``count`` requests in all (False: its connection failed)."""
        with self.progress:
            assert self.progress.wait_for(lambda: self.served >= count or self.error, timeout), (
                f"client on port {self.port}: {self.served} requests, no progress"
            )
            return not self.error

    def close(self) -> None:
        self.stop.set()
        self.join(15)
        assert not self.is_alive(), "a client hung"
        self.sock.close()


def kill_reactor_under_load(server: Server) -> None:
    """Kill reactor 1 while CLIENTS connections send requests; only its connections fail."""
    (victim,) = reactor_pids(server)
    clients = [KeepAlive(server.port) for _ in range(CLIENTS)]
    try:
        held = client_ports(victim, server.port)
        assert len(held) == CLIENTS // 2, (held, [c.port for c in clients])
        for client in clients:
            client.start()
        for client in clients:
            assert client.wait_served(3)
        before = {c.port: c.served for c in clients}
        start = len(server.stderr)
        os.kill(victim, signal.SIGKILL)
        server.wait_for(r"reactor 1 respawned \(pid (\d+)\)", start=start)
        lost = set()
        for client in clients:  # each survivor serves 5 more; each of the victim's fails
            if not client.wait_served(before[client.port] + 5):
                lost.add(client.port)
        assert lost == held, f"lost {sorted(lost)}, the killed reactor held {sorted(held)}"
        for client in clients:
            if client.port in lost:
                assert client.error, "a connection of the killed reactor did not fail"
    finally:
        for client in clients:
            client.close()
    assert not Path(f"/proc/{victim}").exists(), "the killed reactor was not reaped"
    respawned = eventually(
        lambda: next((p for p in reactor_pids(server) if p != victim), None),
        "the respawned reactor's title",  # set just after the fork, in the child
    )
    assert reactor_pids(server) == [respawned]
    # new connections go to the new reactor too (it holds the fewest), and it serves
    # them through workers that linked to it again
    fresh = [KeepAlive(server.port) for _ in range(4)]
    try:
        on_new = client_ports(respawned, server.port)
        assert on_new & {c.port for c in fresh}, "no new connection went to the new reactor"
        for client in fresh:
            for _ in range(3):
                client.request()
    finally:
        for client in fresh:
            client.sock.close()


@pytest.mark.parametrize("app", ["wsgi_echo:app", "asgi_echo:app"])
def test_a_killed_reactor_loses_only_its_connections_and_is_respawned(
    serve: Starter, app: str
) -> None:
    server = serve(app, "--reactors", "2", workers=2)
    kill_reactor_under_load(server)
    kill_reactor_under_load(server)  # a second kill (of the respawned one) recovers too
    assert len(server.wait_for_count(r"reactor 1 \(pid \d+\) died unexpectedly", 2)) == 2
    assert server.stop() == 0
    assert "Traceback" not in server.logs()


def test_a_reactor_killed_while_a_worker_retires_lets_it_stop(
    serve: Starter, tmp_path: Path
) -> None:
    """A worker retiring when a reactor dies still gets its STOP from the new reactor."""
    server = serve("gate:app", "--reactors", "2", "--threads", "1", workers=1)
    release = tmp_path / "release"
    held = connect(server.port, timeout=20)
    held.sendall(f"GET /hold?f={release} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    server.wait_for(r"gate: waiting (\d+)", stream="stdout")
    start = len(server.stderr)
    server.send(signal.SIGHUP)  # the old worker retires once its request is answered
    (victim,) = reactor_pids(server)
    os.kill(victim, signal.SIGKILL)
    server.wait_for(r"reactor 1 respawned", start=start)
    release.touch()
    response = ResponseReader(held).read()
    held.close()
    # the held request was on reactor 0 (the first connection stays with the master)
    assert response.status == 200
    server.wait_for("reload finished", start=start)
    assert server.stop() == 0


def test_the_app_hears_that_the_clients_of_a_killed_reactor_left(
    serve: Starter, tmp_path: Path
) -> None:
    """An ASGI request waiting for http.disconnect on reactor 1 gets it when reactor 1 dies."""
    server = serve("asgi_echo:app", "--reactors", "2", workers=1)
    marker = tmp_path / "disconnected"
    first = KeepAlive(server.port)  # reactor 0's; the next connection goes to reactor 1
    (victim,) = reactor_pids(server)
    waiting = connect(server.port, timeout=10)
    try:
        waiting.sendall(f"GET /disconnect?f={marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        port = waiting.getsockname()[1]
        eventually(lambda: True if port in client_ports(victim, server.port) else None, "reactor 1")
        first.request()  # the request above has been dispatched by now (one worker, in order)
        os.kill(victim, signal.SIGKILL)
        eventually(lambda: marker.exists() or None, "the app's http.disconnect")
        assert marker.read_text() == "disconnected"
        first.request()  # reactor 0's connection is untouched
    finally:
        waiting.close()
        first.sock.close()
    # stopped at once, though reactor 1 may still await its respawn: a dead reactor
    # is not waited for by the drain
    assert server.stop() == 0
    assert "graceful timeout" not in server.logs()
