"""--reactors N: reactor processes share the connections; dispatch-to-idle holds across them.

The life-cycle, process, WSGI, ASGI and metrics suites also run with a second
reactor (``pytest.mark.modes(..., "reactors")``).
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import httpx

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Server, Starter


def reactor_pids(server: Server) -> list[int]:
    return [p for p, t in server.children().items() if t.startswith("swserve: reactor")]


def sockets_of(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def test_new_connections_go_to_the_reactor_holding_the_fewest(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--reactors", "3", workers=2)
    assert len(reactor_pids(server)) == 2  # reactors 1 and 2; reactor 0 is the master
    before = {pid: sockets_of(pid) for pid in [server.pid, *reactor_pids(server)]}
    held = []
    for _ in range(12):  # one at a time, each kept open: 4 per reactor, the master's too
        sock = connect(server.port)
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ResponseReader(sock).read().status == 200
        held.append(sock)
    after = {pid: sockets_of(pid) for pid in before}
    # each of the three reactors serves 4 of the 12 (the master's reactor 0 included)
    assert {pid: after[pid] - before[pid] for pid in after} == dict.fromkeys(after, 4), (
        before,
        after,
    )
    for sock in held:
        sock.close()
    server.wait_for("3 reactors")


def test_an_idle_worker_is_found_across_reactors(serve: Starter, tmp_path: Path) -> None:
    """A worker busy with one reactor's request is busy for the other reactor too."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = serve("gate:app", "--reactors", "2", workers=2)
    # four keep-alive connections: two on each reactor
    clients = [httpx.Client(base_url=server.url, timeout=20) for _ in range(4)]
    try:
        pids = {c.get("/pid").text for c in clients}  # opens each client's connection
        assert len(pids) >= 1
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            slow = pool.submit(clients[0].get, f"/wait?g={gate}")
            # the pid of the worker holding the slow request
            busy = server.wait_for(r"^gate: waiting (\d+)", stream="stdout").group(1)
            fast = [c.get("/pid") for c in clients[1:] for _ in range(5)]
            assert all(r.status_code == 200 for r in fast)
            assert busy not in {r.text for r in fast}, "a request was sent to the busy worker"
            assert not slow.done(), "answered only after the slow one: they waited behind it"
            with open(gate, "wb"):
                pass
            assert slow.result().text == "released"
    finally:
        for c in clients:
            c.close()
