"""Base mode's own guarantees: what differs from process mode, and the shared socket.

The rest of base mode's behaviour is covered by running the wire, WSGI, ASGI,
framework, hardening and life-cycle suites in both modes (``pytest.mark.modes``).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Starter
from tests.integration.test_lifecycle import wait_until, worker_pids
from tests.integration.test_process import wait_for_file


def test_killed_worker_takes_only_its_own_connections(serve: Starter, tmp_path: Path) -> None:
    server = serve("wsgi_echo:app", "--mode", "base", workers=2)
    marker = tmp_path / "pid"
    victim_conn = connect(server.port)
    victim_conn.sendall(b"GET /sleep?s=30&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
    victim = int(wait_for_file(marker))
    os.kill(victim, signal.SIGKILL)
    victim_conn.settimeout(10)
    try:
        assert victim_conn.recv(1) == b""  # its connection died with it: nobody can answer
    except ConnectionResetError:
        pass
    finally:
        victim_conn.close()
    server.wait_for(rf"worker \d \(pid {victim}\) was killed by SIGKILL")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(20):  # everyone else is served, by the survivor or the replacement
            assert client.get("/echo").status_code == 200
    wait_until(lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server))


def test_connections_waiting_in_the_backlog_survive_a_retiring_worker(
    serve: Starter, tmp_path: Path
) -> None:
    """Every worker accepts from one listening socket, so its queue outlives any worker.

    With per-worker SO_REUSEPORT sockets the connections queued on the old
    worker's socket would be reset when it exits.
    """
    server = serve("wsgi_echo:app", "--mode", "base", workers=1)
    (old,) = worker_pids(server)
    marker = tmp_path / "busy"
    busy = connect(server.port)
    busy.sendall(b"GET /sleep?s=1&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
    wait_for_file(marker)  # the only worker is in the app: new connections wait in the backlog
    waiting = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(20)]
    for sock in waiting:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    server.send(signal.SIGHUP)  # the old worker retires as soon as its replacement is ready
    assert ResponseReader(busy).read().status == 200
    busy.close()
    pids = set()
    for sock in waiting:
        response = ResponseReader(sock).read()
        assert response.status == 200
        pids.add(int(response.body))
        sock.close()
    server.wait_for("reload finished", timeout=30)
    (new,) = worker_pids(server)
    assert new != old
    assert pids <= {old, new}  # whichever worker took them, none was lost
