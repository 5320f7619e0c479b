"""Workers come and go, requests and connections don't: recycling, reload, timeouts, scaling."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Server, Starter
from tests.integration.loadgen import Load

pytestmark = pytest.mark.modes("process", "base", "reactors")


def worker_pids(server: Server) -> set[int]:
    return {pid for pid, title in server.children().items() if title.startswith("swserve: worker")}


def manager_pid(server: Server) -> int:
    (pid,) = [pid for pid, title in server.children().items() if title == "swserve: manager"]
    return pid


def manager_children(manager: int) -> list[int]:
    """Live (not zombie) children of the manager: worker processes, old and new.

    Counted by parentage rather than by process title, which a just-forked
    worker has not set yet.
    """
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == manager and stat[0] != "Z":
            out.append(int(entry.name))
    return out


def wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling observable state with a deadline


def test_max_requests_recycles_without_losing_a_request(serve: Starter, mode: str) -> None:
    server = serve("wsgi_echo:app", "--max-requests", "50", workers=2)
    before = worker_pids(server)
    manager = manager_pid(server)
    min_workers = 2
    low: object = None
    with Load(server.port, clients=12, path="/echo") as load:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (load.total < 300 or before & worker_pids(server)):
            # A capacity drop that matters lasts a whole worker boot (tens of ms); a
            # single low /proc sample taken mid-fork or mid-exit is not one, so a drop
            # counts only if the next sample, 20 ms later, is low too.
            kids = manager_children(manager)
            if len(kids) < 2:
                time.sleep(0.02)  # re-sampling the process tree, not synchronising
                again = manager_children(manager)
                if len(again) < 2:
                    low = (kids, again, server.children())
                    min_workers = min(min_workers, len(again))
            time.sleep(0.01)  # sampling the process tree while the load runs
    assert load.total >= 300
    assert load.failures() == []
    assert all(c.reconnects == 0 for c in load.clients)
    if mode != "base":
        assert all(c.closed == 0 for c in load.clients), "a keep-alive connection was closed"
    assert not (before & worker_pids(server)), "no worker was recycled"
    assert min_workers >= 2, f"capacity dropped below --workers: {low}\n" + server.logs()


def test_sighup_three_times_under_load_drops_nothing_and_serves_new_code(
    serve: Starter, tmp_path: Path, mode: str
) -> None:
    version = tmp_path / "version"
    version.write_text("v1")
    server = serve("versioned:app", workers=2, env={"VERSION_FILE": str(version)})
    with Load(server.port, clients=8, path="/") as load:
        load.wait_for(50)
        for n in range(3):
            version.write_text(f"v{n + 2}")
            marker = len(server.stderr)
            server.send(signal.SIGHUP)
            server.wait_for("reload finished", start=marker, timeout=30)
        seen = load.total
        load.wait_for(seen + 50)
    assert load.failures() == []
    assert all(c.reconnects == 0 for c in load.clients)
    if mode != "base":  # keep-alive connections live in the reactor, not in a worker
        assert all(c.closed == 0 for c in load.clients), "a keep-alive connection was closed"
    last = [c.bodies[-1].split()[0] for c in load.clients]
    assert set(last) == {b"v4"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text.startswith("v4 ")


def test_reload_with_broken_code_keeps_the_old_workers(serve: Starter, tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("good")
    server = serve("versioned:app", workers=2, env={"VERSION_FILE": str(version)})
    before = worker_pids(server)
    version.write_text("broken")
    server.send(signal.SIGHUP)
    server.wait_for("abandoned")
    server.wait_for("this deploy is broken")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(10):
            r = client.get("/")
            assert r.status_code == 200
            assert r.text.startswith("good ")
    assert worker_pids(server) == before
    # and a later, fixed deploy reloads fine
    version.write_text("fixed")
    marker = len(server.stderr)
    server.send(signal.SIGUSR1)
    server.wait_for("reload finished", start=marker, timeout=30)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text.startswith("fixed ")


def test_sync_reload_replaces_one_at_a_time(serve: Starter, tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("a")
    server = serve(
        "versioned:app", "--reload-mode", "sync", workers=2, env={"VERSION_FILE": str(version)}
    )
    version.write_text("b")
    with Load(server.port, clients=4, path="/") as load:
        load.wait_for(20)
        server.send(signal.SIGHUP)
        server.wait_for("reload finished", timeout=30)
        seen = load.total
        load.wait_for(seen + 20)
    assert load.failures() == []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text.startswith("b ")


def test_timeout_answers_504_and_replaces_the_worker(serve: Starter, tmp_path: Path) -> None:
    server = serve("wsgi_echo:app", "--timeout", "1", "--graceful-timeout", "2", workers=2)
    marker = tmp_path / "pid"
    with httpx.Client(base_url=server.url, timeout=20) as client:
        started = time.monotonic()
        r = client.get("/sleep", params={"s": "3600", "f": str(marker)})
        elapsed = time.monotonic() - started
        assert r.status_code == 504
        assert 1.0 <= elapsed < 3.0
        stuck = int(marker.read_text())
        for _ in range(20):
            assert client.get("/echo").status_code == 200
        wait_until(
            lambda: stuck not in worker_pids(server) and len(worker_pids(server)) == 2,
            what="replacement",
        )
    server.wait_for("ran past --timeout")


def test_asgi_timeout_cancels_only_that_request(serve: Starter) -> None:
    server = serve("asgi_echo:app", "--timeout", "1", workers=1)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        pid = client.get("/pid").text
        assert client.get("/sleep", params={"s": "3600"}).status_code == 504
        assert client.get("/pid").text == pid  # same worker, still serving
    server.wait_for("cancelled GET /sleep")


def test_killed_worker_with_broken_code_backs_off_instead_of_halting(
    serve: Starter, tmp_path: Path
) -> None:
    """Once the server has served, a crash loop never stops it (test_crash_loop.py: the rest)."""
    version = tmp_path / "version"
    version.write_text("ok")
    server = serve("versioned:app", workers=1, env={"VERSION_FILE": str(version)})
    (pid,) = worker_pids(server)
    version.write_text("broken")
    import os

    os.kill(pid, signal.SIGKILL)
    server.wait_for(r"worker 1 failed to boot \(the app failed to load\); respawning")
    server.wait_for(r"worker 1 failed to boot 2 times in a row .*next try in 0\.5s")
    server.wait_for(r"worker 1 failed to boot 3 times in a row .*next try in 1s")
    assert server.proc.poll() is None
    assert not any("stopping instead of respawning" in line for line in server.stderr)


def test_ttin_and_ttou_change_the_worker_count(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=2)
    server.send(signal.SIGTTIN)
    wait_until(lambda: len(worker_pids(server)) == 3, what="a third worker")
    server.send(signal.SIGTTOU)  # standard signals do not queue: one at a time
    wait_until(lambda: len(worker_pids(server)) == 2, what="back to two workers")
    server.send(signal.SIGTTOU)
    wait_until(lambda: len(worker_pids(server)) == 1, what="one worker left")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/echo").status_code == 200


def test_keep_alive_connection_survives_a_reload(serve: Starter, tmp_path: Path, mode: str) -> None:
    version = tmp_path / "version"
    version.write_text("old")
    server = serve("versioned:app", workers=1, env={"VERSION_FILE": str(version)})
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.read().body.startswith(b"old")
        version.write_text("new")
        server.send(signal.SIGHUP)
        server.wait_for("reload finished", timeout=30)
        if mode != "base":
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reader.read().body.startswith(b"new")
            return
        # base mode: the connection was the retired worker's, which kept it for its
        # --keep-alive time (a request in that time is answered with Connection:
        # close) and then closed it cleanly: EOF, not a reset
        assert sock.recv(1) == b""
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ResponseReader(sock).read().body.startswith(b"new")


def test_memory_limit_recycles_a_leaking_worker(serve: Starter) -> None:
    server = serve("leak:app", "--max-worker-memory", "64", workers=1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.get("/").text
        for _ in range(5):  # 80 MiB leaked
            assert client.get("/leak").status_code == 200
        wait_until(lambda: client.get("/").text != first, what="a fresh worker")
    assert server.stop() == 0
    server.wait_for(r"recycled: memory 1")


def test_lifetime_limit_recycles_workers(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--max-worker-lifetime", "1", workers=2)
    before = worker_pids(server)
    with Load(server.port, clients=4, path="/echo") as load:
        wait_until(lambda: not (before & worker_pids(server)), what="both workers recycled")
    assert load.failures() == []
    assert all(c.reconnects == 0 for c in load.clients)


def test_retiring_worker_is_killed_after_max_wait_time(
    serve: Starter, tmp_path: Path, mode: str
) -> None:
    """A request that outlives --max-wait-time on a retiring worker gets 502 (process mode)."""
    version = tmp_path / "version"
    version.write_text("v")
    server = serve(
        "versioned:app", "--max-requests", "1", "--max-requests-jitter", "0", "--max-wait-time", "1",
        workers=1, env={"VERSION_FILE": str(version), "IMPORT_DELAY": "0.5"},
    )  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/").status_code == 200  # the worker's one request: it will be recycled
        started = time.monotonic()
        if mode != "base":
            r = client.get("/forever")  # still to the old worker: its replacement is importing
            assert r.status_code == 502
        else:  # the connection is the old worker's own: it dies with it
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/forever")
        assert time.monotonic() - started < 10
        server.wait_for("did not finish its requests in 1s: killing it")
        assert client.get("/").status_code == 200  # the replacement serves
