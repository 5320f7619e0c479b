"""The process model with real processes and real signals."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader, connect, exchange
from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")


def titles(server: Server) -> list[str]:
    return sorted(server.children().values())


def worker_pids(server: Server) -> set[int]:
    return {pid for pid, title in server.children().items() if title.startswith("swserve: worker")}


def test_process_tree_and_titles(serve: Starter, mode: str) -> None:
    server = serve(workers=2)
    reactors = ["swserve: reactor 1"] if mode == "reactors" else []
    assert titles(server) == [
        "swserve: manager",
        "swserve: master",
        *reactors,
        "swserve: worker 1",
        "swserve: worker 2",
    ]
    server.wait_for(rf"{'base' if mode == 'base' else 'process'} mode, wsgi app 'wsgi_echo:app'")


def test_sigterm_lets_an_in_flight_request_finish(serve: Starter, tmp_path: Path) -> None:
    server = serve(workers=1)
    marker = tmp_path / "pid"
    with connect(server.port) as sock:
        sock.sendall(b"GET /sleep?s=2&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
        wait_for_file(marker)  # the worker has the request
        time_sent = time.monotonic()
        server.send(signal.SIGTERM)
        r = ResponseReader(sock).read()
        assert (r.status, r.body) == (200, b"slept")
        assert r.header("connection") == "close"
        assert time.monotonic() - time_sent >= 1.0
    assert server.wait_exit(30) == 0


def test_sigterm_closes_idle_keep_alive_connections(serve: Starter) -> None:
    server = serve(workers=1)
    with connect(server.port) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        server.send(signal.SIGTERM)
        assert reader.closed(10)
    assert server.wait_exit(30) == 0


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return text
        time.sleep(0.01)  # polling a file with a deadline, not sleeping to synchronise
    raise AssertionError(f"{path} did not appear")


def test_sigint_twice_forces_exit(serve: Starter, tmp_path: Path) -> None:
    server = serve(workers=1)
    server.expected_exit = None
    marker = tmp_path / "pid"
    with connect(server.port) as sock:
        sock.sendall(b"GET /sleep?s=30&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
        wait_for_file(marker)
        server.send(signal.SIGINT)
        server.wait_for("SIGINT: shutting down")
        server.send(signal.SIGINT)
        code = server.wait_exit(10)
    assert code == 1  # docs/signals.md: "the master exits at once with code 1"
    server.wait_for("second SIGINT: exiting now")
    server.kill_group()


def test_killed_worker_gives_502_to_its_request_only_and_is_replaced(
    serve: Starter, tmp_path: Path, mode: str
) -> None:
    if mode == "base":
        pytest.skip("base mode: a worker's connections die with it (see test_base_mode.py)")
    server = serve(workers=2)
    marker = tmp_path / "pid"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            slow = pool.submit(client.get, f"/sleep?s=5&f={marker}")
            victim = int(wait_for_file(marker))
            fast = [pool.submit(client.get, "/echo") for _ in range(40)]
            os.kill(victim, signal.SIGKILL)
            assert slow.result().status_code == 502
            assert all(f.result().status_code == 200 for f in fast)
        server.wait_for(rf"worker \d \(pid {victim}\) was killed by SIGKILL")
        deadline = time.monotonic() + 20
        while len(worker_pids(server)) < 2 and time.monotonic() < deadline:
            assert client.get("/echo").status_code == 200
        after = worker_pids(server)
        assert len(after) == 2
        assert victim not in after
        assert client.get("/echo").status_code == 200


def test_unimportable_app_exits_3_with_one_line(serve: Starter) -> None:
    server = serve("no_such_module:app", wait=False)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    server.kill_group()
    errors = [line for line in server.stderr if line.strip()]
    assert len(errors) == 1, server.logs()
    assert "could not import 'no_such_module:app': No module named 'no_such_module'" in errors[0]
    assert "Traceback" not in server.logs()


def test_app_raising_at_import_exits_3(serve: Starter) -> None:
    server = serve("crash_on_boot:app", wait=False)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    server.kill_group()
    assert "RuntimeError: this app cannot start" in server.logs()
    assert "Traceback" not in server.logs()


def test_debug_log_level_shows_the_traceback(serve: Starter) -> None:
    server = serve("crash_on_boot:app", "--log-level", "debug", wait=False, workers=1)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    server.kill_group()
    assert "Traceback" in server.logs()


def test_missing_attribute_and_not_callable(serve: Starter) -> None:
    for app, reason in (
        ("wsgi_echo:nope", "has no attribute 'nope'"),
        ("wsgi_echo:json", "not callable"),
    ):
        server = serve(app, wait=False, workers=1)
        server.expected_exit = 3
        assert server.wait_exit(30) == 3
        server.kill_group()
        assert reason in server.logs()


def test_lifespan_startup_failure_exits_3(serve: Starter) -> None:
    server = serve("lifespan_fail:app", wait=False, workers=1)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    server.kill_group()
    assert "lifespan startup failed: database unreachable" in server.logs()


def test_bind_in_use_is_one_line_and_nonzero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server(
            [sys.executable, "-m", "swserve", "wsgi_echo:app", "--bind", f"127.0.0.1:{port}"]
        )
        try:
            assert server.wait_exit(20) == 1
        finally:
            server.kill_group()
        assert any(f"cannot listen on 127.0.0.1:{port}" in line for line in server.stderr)
        assert "Traceback" not in server.logs()


def test_unix_socket_bind(serve: Starter, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    server = serve("wsgi_echo:app", "--bind", f"unix:{path}", workers=1)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ResponseReader(sock).read().status == 200
    assert exchange(server.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")[0].status == 200


def test_idle_dispatch_sends_requests_past_a_busy_worker(
    serve: Starter, mode: str, tmp_path: Path
) -> None:
    if mode == "base":
        pytest.skip("dispatch is process mode's: in base mode a connection stays with its worker")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = serve("gate:app", workers=2)
    with (
        httpx.Client(base_url=server.url, timeout=20) as client,
        concurrent.futures.ThreadPoolExecutor(4) as pool,
    ):
        slow = pool.submit(client.get, f"/wait?g={gate}")
        # the worker holds it (with --reactors: it has said it is busy)
        busy = server.wait_for(r"^gate: waiting (\d+)", stream="stdout").group(1)
        server_pids = worker_pids(server)
        fast = [client.get("/pid") for _ in range(10)]
        assert all(r.status_code == 200 for r in fast)
        # all answered while the slow one is still held: none waited behind it
        assert not slow.done(), "the slow request finished before the gate opened"
        assert {r.text for r in fast} == {r.text for r in fast[:1]}  # the one idle worker
        assert fast[0].text != busy
        assert int(fast[0].text) in server_pids
        with open(gate, "wb"):
            pass
        assert slow.result().text == "released"


def test_app_stdout_lines_are_whole_and_not_lost(serve: Starter) -> None:
    server = serve(workers=2)
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        results = list(pool.map(lambda n: client.get(f"/print?n={n}").status_code, range(60)))
    assert results == [200] * 60
    for n in range(60):
        server.wait_for(rf"^line from the app {n} x{{200}}$", stream="stdout")
    lines = [line for line in server.stdout if line.startswith("line from the app")]
    assert all(line.endswith("x" * 200) for line in lines)


def test_sigterm_to_the_whole_process_group_stops_cleanly(serve: Starter) -> None:
    """What systemd's KillMode=control-group and `kill -- -PGID` do."""
    server = serve(workers=2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/echo").status_code == 200
    os.killpg(server.pid, signal.SIGTERM)
    assert server.wait_exit(30) == 0, server.logs()
    assert not any("died unexpectedly" in line for line in server.stderr)


def test_sigquit_stops_without_draining(serve: Starter, tmp_path: Path) -> None:
    server = serve(workers=1)
    marker = tmp_path / "pid"
    with connect(server.port) as sock:
        sock.sendall(b"GET /sleep?s=30&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
        wait_for_file(marker)
        started = time.monotonic()
        server.send(signal.SIGQUIT)
        assert server.wait_exit(20) == 0
        assert time.monotonic() - started < 15  # did not wait for the 30 s request


def test_unix_socket_in_use_is_refused(serve: Starter, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    first = serve("wsgi_echo:app", "--bind", f"unix:{path}", workers=1)
    second = serve("wsgi_echo:app", "--bind", f"unix:{path}", workers=1, wait=False)
    second.expected_exit = 1
    assert second.wait_exit(20) == 1
    assert "another server is listening there" in second.logs()
    with socket.socket(socket.AF_UNIX) as sock:  # the first one still serves
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ResponseReader(sock).read().status == 200
    assert first.proc.poll() is None


def test_keep_alive_zero_closes_after_each_response(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--keep-alive", "0", workers=1)
    with connect(server.port) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = ResponseReader(sock)
        assert reader.read().header("connection") == "close"
        assert reader.closed()


def test_round_robin_dispatch_alternates_workers(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip("dispatch is process mode's: in base mode a connection stays with its worker")
    server = serve("wsgi_echo:app", "--dispatch", "round-robin", workers=2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pids = [client.get("/pid").text for _ in range(6)]
    assert len(set(pids)) == 2
    assert pids[0::2] == [pids[0]] * 3  # A B A B A B
    assert pids[1::2] == [pids[1]] * 3


def test_fd_dispatch_pins_a_connection_to_a_worker(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip("dispatch is process mode's: in base mode a connection stays with its worker")
    server = serve("wsgi_echo:app", "--dispatch", "fd", workers=2)
    seen = set()
    for _ in range(4):  # several connections: each sticks to one worker
        with httpx.Client(base_url=server.url, timeout=10) as client:
            pids = {client.get("/pid").text for _ in range(5)}
        assert len(pids) == 1
        seen |= pids
    assert len(seen) == 2


def test_request_whose_client_left_before_dispatch_is_discarded(
    serve: Starter, tmp_path: Path, mode: str
) -> None:
    """Swoole's discard_data: a queued request of a client that has gone never runs."""
    if mode == "base":
        pytest.skip("base mode queues nothing between processes: a request runs as it is read")
    server = serve("wsgi_echo:app", workers=1)
    busy = tmp_path / "busy"
    ghost = tmp_path / "ghost"
    with connect(server.port) as holder:
        holder.sendall(b"GET /sleep?s=1&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(busy).encode())
        wait_for_file(busy)  # the only worker is busy: the next request waits in the reactor
        with connect(server.port) as leaver:
            leaver.sendall(b"GET /sleep?s=0&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(ghost).encode())
        assert ResponseReader(holder).read().status == 200
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/echo").status_code == 200  # the worker has moved past it
    assert not ghost.exists()
