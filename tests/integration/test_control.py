"""The control socket, ``swserve ctl`` and ``swserve top`` against a real server.

Every answer is checked against what the server is doing: the request a
worker holds, the pids the manager forked, the workers it stops.  Waits poll
the socket itself with a deadline, never a sleep.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from swserve.control.client import Client
from swserve.control.protocol import ControlError
from tests.integration.conftest import APPS, Server, Starter
from tests.integration.loadgen import Load
from tests.integration.test_process_settings import unprivileged_python

T = TypeVar("T")


def ctl(
    sock: Path | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    where = ["--control-socket", str(sock)] if sock else []
    return subprocess.run(
        [sys.executable, "-m", "swserve", "ctl", *where, *args],
        capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})},
    )  # fmt: skip


def ctl_json(sock: Path, *args: str) -> Any:
    done = ctl(sock, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Ask until ``probe`` returns something, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling the server's own answer, with a deadline


def serving(sock: Path) -> dict[int, int]:
    """slot → pid of every worker that takes requests now."""
    with Client(sock) as client:
        rows = client.call("workers")
    return {r["slot"]: r["pid"] for r in rows if r["state"] in ("idle", "busy")}


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "ctl.sock"


def sleeping(server: Server, tmp_path: Path, seconds: float) -> tuple[threading.Thread, int]:
    """Start a request that sleeps in the app; return its thread and the worker pid holding it."""
    marker = tmp_path / "holder"
    thread = threading.Thread(
        target=lambda: httpx.get(f"{server.url}/sleep?s={seconds}&f={marker}", timeout=60),
        daemon=True,
    )
    thread.start()
    pid = eventually(
        lambda: int(marker.read_text()) if marker.exists() and marker.read_text() else None,
        "the sleeping request",
    )
    return thread, pid


def test_a_stuck_request_shows_its_path_a_growing_age_and_its_stack(
    serve: Starter, sock: Path, tmp_path: Path
) -> None:
    server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    thread, pid = sleeping(server, tmp_path, 6)
    rows = {r["pid"]: r for r in ctl_json(sock, "workers")}
    assert set(rows) == set(serving(sock).values())
    assert len(rows) == 2
    held = rows.pop(pid)
    assert held["state"] == "busy"
    assert held["in_flight"] == 1
    assert held["current"]["method"] == "GET"
    assert held["current"]["path"].startswith("/sleep?s=6&f=")
    assert held["rss"] > 1_000_000
    assert held["cpu"] >= 0
    assert held["started_at"] <= time.time()
    (other,) = rows.values()
    assert other["state"] == "idle"
    assert other["current"] is None
    first_age = held["current"]["age"]

    def older() -> float | None:
        (row,) = [r for r in ctl_json(sock, "workers") if r["pid"] == pid]
        return row["current"]["age"] if row["current"]["age"] > first_age + 0.2 else None

    eventually(older, "the age to grow")

    # slowlog: the stack of the request, now, from the worker itself
    stack = ctl_json(sock, "slowlog", str(held["slot"]))
    assert stack["pid"] == pid
    assert stack["current"]["path"] == held["current"]["path"]
    assert "wsgi_echo.py" in stack["stack"]
    assert "time.sleep" in stack["stack"]
    text = ctl(sock, "slowlog", str(held["slot"]))
    assert text.returncode == 0
    assert text.stdout.startswith(f"worker {held['slot']} (pid {pid}), GET /sleep?s=6&f=")

    # top --once: one plain table, parsed: the stuck worker is marked
    done = subprocess.run(
        [sys.executable, "-m", "swserve", "top", "--once", "--control-socket", str(sock),
         "--interval", "0.3", "--slowlog-timeout", "0.5"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("swserve ")
    assert f"pid {server.pid}" in lines[0]
    assert "in flight 1" in lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("ROLE"))
    table = [line.split() for line in lines[header + 1 : -1]]
    by_pid = {int(cells[2]): cells for cells in table}
    assert by_pid[server.pid][0] == "master"
    assert [c[0] for c in table].count("manager") == 1
    assert by_pid[pid][:4] == ["worker", str(held["slot"]), str(pid), "stuck"]
    assert by_pid[pid][-2] == "GET"
    assert by_pid[pid][-1].startswith("/sleep?s=6")
    assert by_pid[other["pid"]][3] == "idle"
    thread.join(30)


def test_stats_are_the_servers_figures(serve: Starter, sock: Path) -> None:
    server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(5):
            assert client.get("/pid").status_code == 200
        stats = ctl_json(sock, "stats")  # the keep-alive connection is still open
    assert stats["pid"] == server.pid
    assert stats["requests"] == 5
    assert stats["connections"] == 1
    assert stats["workers"] == 2
    assert stats["in_flight"] == 0
    assert stats["queued"] == 0
    assert stats["ready"] is True
    assert stats["metrics"]["swserve_workers_alive"] == 2  # what /metrics says
    assert stats["metrics"]['swserve_worker_restarts_total{reason="crash"}'] == 0
    text = ctl(sock, "stats").stdout.splitlines()
    assert "requests            5" in text
    assert stats["errors"] is None  # answers are counted by status with --metrics-bind
    # top without a terminal: the plain table, as --once prints it
    piped = subprocess.run(
        [sys.executable, "-m", "swserve", "top", "--control-socket", str(sock), "--interval", "0.2"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("swserve ")
    assert "requests 5 " in piped.stdout
    sessions = ctl_json(sock, "sessions")
    assert sessions["sessions"] == []  # a WSGI app: no WebSocket sessions
    assert sorted(w["slot"] for w in sessions["per_worker"]) == [1, 2]


def test_recycle_replaces_exactly_that_worker_under_load(serve: Starter, sock: Path) -> None:
    server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    before = serving(sock)
    with Load(server.port, clients=4, path="/pid") as load:
        load.wait_for(50)
        done = ctl(sock, "recycle", "1")
        assert done.returncode == 0, done.stderr
        assert (
            done.stdout.strip()
            == f"recycling worker 1 (pid {before[1]}): its replacement starts first"
        )
        after = eventually(
            lambda: (
                s
                if (s := serving(sock)).get(1) not in (None, before[1])
                and before[1] not in s.values()
                else None
            ),
            "the replacement of worker 1",
        )
        eventually(
            lambda: True if not Path(f"/proc/{before[1]}").exists() else None,
            "the old worker to exit",
        )
        seen = load.total
        load.wait_for(seen + 50)
    assert after[2] == before[2]  # the other worker was left alone
    assert load.failures() == []
    assert all(c.reconnects == 0 for c in load.clients)
    assert ctl_json(sock, "stats")["recycled"] == {"manual": 1}


def test_scale_changes_the_number_of_workers(serve: Starter, sock: Path) -> None:
    serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    done = ctl(sock, "scale", "4")
    assert (done.returncode, done.stdout) == (0, "scaling to 4 worker(s)\n")
    eventually(lambda: True if sorted(serving(sock)) == [1, 2, 3, 4] else None, "4 workers")
    assert ctl(sock, "scale", "-1").stdout == "scaling by -1 worker(s)\n"
    eventually(lambda: True if sorted(serving(sock)) == [1, 2, 3] else None, "3 workers")
    assert ctl(sock, "scale", "+1").returncode == 0
    eventually(lambda: True if sorted(serving(sock)) == [1, 2, 3, 4] else None, "4 workers again")
    assert ctl(sock, "scale", "1").returncode == 0
    eventually(lambda: True if sorted(serving(sock)) == [1] else None, "1 worker")


def test_reload_replaces_every_worker(serve: Starter, sock: Path) -> None:
    server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    before = serving(sock)
    assert ctl(sock, "reload").stdout == "reloading 2 worker(s)\n"
    server.wait_for("reload finished")
    after = serving(sock)
    assert sorted(after) == [1, 2]
    assert not set(after.values()) & set(before.values())
    assert ctl_json(sock, "stats")["reloads"] == 1


def test_bad_commands_get_one_line_and_a_non_zero_exit(serve: Starter, sock: Path) -> None:
    serve("wsgi_echo:app", "--control-socket", str(sock), workers=1)
    cases = [
        (("bogus",), 2, "swserve: error: No such command 'bogus'."),
        (("recycle", "9"), 1, "swserve: error: there is no serving worker in slot 9"),
        (
            ("slowlog", "x"),
            2,
            "swserve: error: Invalid value for 'SLOT': 'x' is not a valid integer.",
        ),
        (("scale", "x"), 2, "swserve: error: scale takes N, +K or -K (got 'x')"),
        (("scale", "0"), 1, "swserve: error: scale: the number of workers must be 1 … 1024"),
        (
            ("reload", "--task-workers"),
            1,
            "swserve: error: this server has no task workers (--task-workers)",
        ),
    ]
    for args, code, line in cases:
        done = ctl(sock, *args)
        assert (done.returncode, done.stderr, done.stdout) == (code, line + "\n", ""), args
    done = ctl(sock.with_name("missing.sock"), "stats")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "no control socket at" in done.stderr
    stale = sock.with_name("stale.sock")  # a server that was killed left its socket
    with socket.socket(socket.AF_UNIX) as leftover:
        leftover.bind(str(stale))
    done = ctl(stale, "stats")
    assert (done.returncode, done.stderr) == (
        1,
        f"swserve: error: nothing listens on {stale}: the server has stopped\n",
    )


def test_only_the_servers_user_and_root_may_connect(serve: Starter) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a client as another user")
    directory = Path(tempfile.mkdtemp())
    try:
        directory.chmod(0o755)  # let nobody reach the socket's file
        sock = directory / "ctl.sock"
        server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=1)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600

        def as_nobody() -> str:
            """Connect from a forked child that has become nobody (uid 65534)."""
            read_end, write_end = os.pipe()
            child = os.fork()
            if child == 0:  # only socket calls and os._exit here: no test machinery
                answer = b"child failed"
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    try:  # swserve ctl's own client, imported before the fork
                        Client(sock).call("stats")
                        answer = b"answered"
                    except ControlError as exc:
                        answer = str(exc).encode()
                except BaseException as exc:  # said to the parent, which fails the test
                    answer = repr(exc).encode()
                finally:
                    os.write(write_end, answer)
                    os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as reader:
                out = reader.read()
            os.waitpid(child, 0)
            return out.decode()

        # the file's mode (0600) stops it first
        assert as_nobody() == f"permission denied: {sock} belongs to another user"
        sock.chmod(0o666)  # past the file's mode, the server's own check answers
        assert as_nobody() == "permission denied: uid 65534 is neither the server's user nor root"
        server.wait_for(r"control socket: refused pid \d+ of uid 65534")
        assert ctl_json(sock, "stats")["pid"] == server.pid  # root still may
    finally:
        server.stop()
        assert not sock.exists()
        directory.rmdir()


def test_the_default_socket_is_private_found_alone_and_removed(
    serve: Starter, tmp_path: Path
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    server = serve("wsgi_echo:app", workers=1, env=env)
    path = Path(server.wait_for(r"control socket: (\S+)").group(1))
    assert path == runtime / "swserve" / f"{server.pid}.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    done = ctl(None, "workers", env=env)  # no --control-socket: the only server
    assert done.returncode == 0
    assert done.stdout.startswith("SLOT  PID")
    server.stop()
    assert not path.exists()


def test_beside_the_pid_file_and_off(serve: Starter, tmp_path: Path) -> None:
    pid_file = tmp_path / "app.pid"
    server = serve("wsgi_echo:app", "--pid-file", str(pid_file), workers=1)
    assert server.wait_for(r"control socket: (\S+)").group(1) == str(tmp_path / "app.ctl.sock")
    done = ctl(None, "--pid-file", str(pid_file), "--json", "stats")
    assert json.loads(done.stdout)["pid"] == server.pid
    server.stop()
    assert not (tmp_path / "app.ctl.sock").exists()
    off = serve("wsgi_echo:app", "--control-socket", "none", workers=1)
    assert not any("control socket" in line for line in off.stderr)


def test_a_taken_control_socket_path_fails_at_start_up(serve: Starter, sock: Path) -> None:
    serve("wsgi_echo:app", "--control-socket", str(sock), workers=1)
    second = serve("wsgi_echo:app", "--control-socket", str(sock), workers=1, wait=False)
    second.expected_exit = 1
    assert second.wait_exit(30) == 1
    assert any(
        f"--control-socket {sock}: another server is listening there" in x for x in second.stderr
    )
    assert sock.exists()  # the first server's socket is left alone


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Run tmux on a private server socket; the fixture kills that server at the end."""
    name = str(tmp_path / "tmux.sock")

    def run(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", name, *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    yield run
    subprocess.run(["tmux", "-S", name, "kill-server"], capture_output=True, timeout=10)


def test_top_in_a_terminal_shows_the_rows_and_answers_keys(
    serve: Starter, sock: Path, tmp_path: Path, tmux: Callable[..., str]
) -> None:
    server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    pids = serving(sock)
    command = f"{sys.executable} -m swserve top --control-socket {sock} --interval 0.5"
    tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)

    def screen(needle: str) -> Callable[[], str | None]:
        def look() -> str | None:
            text = tmux("capture-pane", "-p", "-t", "top")
            return text if needle in text else None

        return look

    shown = eventually(screen("sort cpu"), "top's first screen")
    lines = shown.splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    assert any(line.startswith("master") and f" {server.pid} " in line for line in lines)
    for slot, pid in pids.items():
        assert any(
            line.split()[:3] == ["worker", str(slot), str(pid)] for line in lines if line.strip()
        )
    tmux("send-keys", "-t", "top", "n")
    eventually(screen("sort reqs"), "the sort to change")
    thread, pid = sleeping(server, tmp_path, 5)
    tmux("send-keys", "-t", "top", "a")  # by age: the busy worker first, and selected
    eventually(screen("sort age"), "the age sort")
    tmux("send-keys", "-t", "top", "Up", "Up", "Up", "Down", "Down")  # to the first worker
    tmux("send-keys", "-t", "top", "s")
    stack = eventually(screen("time.sleep"), "the stack of the busy worker")
    assert f"(pid {pid}), GET /sleep?s=5" in stack
    slot = next(s for s, p in pids.items() if p == pid)
    tmux("send-keys", "-t", "top", "x", "k")  # hide the stack, recycle the selected worker
    eventually(screen(f"recycling worker {slot} (pid {pid})"), "the recycle's answer")
    eventually(
        lambda: True if serving(sock).get(slot) not in (None, pid) else None,
        "the selected worker's replacement",
    )
    tmux("send-keys", "-t", "top", "q")
    gone = ["tmux", "-S", str(tmp_path / "tmux.sock"), "has-session", "-t", "top"]
    eventually(
        lambda: True if subprocess.run(gone, capture_output=True, timeout=10).returncode else None,
        "top to quit on q",
        timeout=10,
    )
    thread.join(30)


def test_errors_are_counted_with_metrics(serve: Starter, sock: Path) -> None:
    server = serve(
        "wsgi_echo:app", "--control-socket", str(sock), "--metrics-bind", "127.0.0.1:0", workers=1
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/status?code=503").status_code == 503
        assert client.get("/status?code=404").status_code == 404
        assert client.get("/pid").status_code == 200
    stats = ctl_json(sock, "stats")
    assert stats["errors"] == 1
    assert stats["metrics"]['swserve_requests_total{method="GET",status="5xx"}'] == 1
    assert stats["metrics"]['swserve_requests_total{method="GET",status="4xx"}'] == 1


def test_with_user_the_socket_is_made_by_root_and_given_to_that_user(tmp_path: Path) -> None:
    """--user with a pid file in a directory only root may write: the socket is there too."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop to another user")
    nobody = pwd.getpwnam("nobody")
    python, env = unprivileged_python(nobody)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    pid_file = run / "app.pid"
    server = Server(
        [python, "-m", "swserve", "wsgi_echo:app", "--bind", "127.0.0.1:0", "--workers", "1",
         "--app-dir", str(APPS), "--user", "nobody", "--pid-file", str(pid_file)],
        env=env,
    )  # fmt: skip
    try:
        server.wait_ready()
        sock = run / "app.ctl.sock"
        info = sock.stat()
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        assert stat.S_IMODE(info.st_mode) == 0o600
        (row,) = ctl_json(sock, "workers")
        assert status_uid(row["pid"]) == nobody.pw_uid
        stack = ctl_json(sock, "slowlog", "1")  # the worker, as nobody, hands its stack over
        assert f"worker 1 (pid {row['pid']})" in stack["stack"]
        server.send(signal.SIGTERM)
        assert server.wait_exit() == 0, server.logs()
        # nobody may not remove what root's directory holds: said, as for the pid file
        assert any(f"could not remove the control socket {sock}" in x for x in server.stderr)
    finally:
        server.kill_group()


def status_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")
