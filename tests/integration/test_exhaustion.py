"""Exhaustion: a full or read-only spool, file descriptors, processes.

Each fails only what needed the missing resource, says so once in the log,
and the server keeps serving everything else.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader, connect, exchange
from tests.integration.conftest import APPS, MODE_ARGS, Server, Starter
from tests.integration.test_process_settings import unprivileged_python

pytestmark = pytest.mark.modes("process", "base")

SPOOL_ARGS = ("--body-spool-size", "64KiB", "--max-body-size", "64MiB")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs to spool into (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "spool"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=1777", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def spool_errors(server: Server) -> list[str]:
    return [line for line in server.stderr if "cannot spool a request body" in line]


def test_a_full_spool_answers_507_once_logged_and_serves_on(
    small_tmpfs: Path, serve: Starter
) -> None:
    server = serve("wsgi_echo:app", *SPOOL_ARGS, workers=1, env={"TMPDIR": str(small_tmpfs)})
    big = os.urandom(4 * 1024 * 1024)  # four times the tmpfs
    with httpx.Client(base_url=server.url, timeout=20) as client:
        for _ in range(3):
            response = client.post("/echo", content=big)
            assert response.status_code == 507
            assert response.headers["connection"] == "close"
            small = client.post("/echo", content=b"x" * 1000)  # in memory: served
            assert small.content == b"x" * 1000
        fits = os.urandom(256 * 1024)  # spooled, and it fits: the partial files were removed
        assert client.post("/echo", content=fits).content == fits
    assert len(spool_errors(server)) == 1, server.logs()
    assert not any("Traceback" in line for line in server.stderr), server.logs()
    server.wait_for("request bodies are spooled again")
    assert not list(small_tmpfs.glob("swserve-body-*"))


def test_a_read_only_spool_answers_503_and_serves_on(small_tmpfs: Path, serve: Starter) -> None:
    server = serve("wsgi_echo:app", *SPOOL_ARGS, workers=1, env={"TMPDIR": str(small_tmpfs)})
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        for _ in range(2):
            assert client.post("/echo", content=b"y" * 200_000).status_code == 503
            assert client.get("/pid").status_code == 200
    assert len(spool_errors(server)) == 1, server.logs()
    assert "Read-only file system" in spool_errors(server)[0]


def nobody_tasks() -> int:
    """Processes and threads of the user nobody now: RLIMIT_NPROC counts them all."""
    uid = pwd.getpwnam("nobody").pw_uid
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(list((entry / "task").iterdir()))
    return count


def settle_nobody() -> None:
    """Wait for nobody's processes (a previous test's, being reaped) to be gone."""
    if os.geteuid() != 0:
        pytest.skip("RLIMIT_NPROC binds only once --user drops root (needs root)")
    deadline = time.monotonic() + 10
    while nobody_tasks():
        if time.monotonic() > deadline:
            pytest.skip("the user nobody runs other processes here: its count would be a guess")
        time.sleep(0.05)  # polling the process table with a deadline


def as_nobody_with_nproc(extra: int, mode: str, *args: str) -> Server:
    """swserve as nobody, allowed ``extra`` more processes than nobody has now."""
    python, env = unprivileged_python(pwd.getpwnam("nobody"))
    limit = nobody_tasks() + extra
    return Server(
        ["prlimit", f"--nproc={limit}:{limit}", python, "-m", "swserve", "wsgi_echo:app",
         "--bind", "127.0.0.1:0", "--app-dir", str(APPS), "--user", "nobody",
         *MODE_ARGS[mode], *args],
        env=env,
    )  # fmt: skip


def test_a_manager_that_cannot_fork_a_worker_backs_off_and_recovers(mode: str) -> None:
    """RLIMIT_NPROC for the --user: master, manager and one worker fit, the second does not.

    A placeholder process of the same user holds one more place; once it
    exits, the manager's next try forks the worker.
    """
    settle_nobody()
    placeholder = subprocess.Popen(["sleep", "600"], user="nobody")
    server = as_nobody_with_nproc(3, mode, "--workers", "2")
    try:
        server.wait_for(r"cannot fork worker 2 \(Resource temporarily unavailable\), 3 ")
        # one line per back-off step (each names its step), not one per 100 ms
        steps = [
            int(m.group(1))
            for line in server.stderr
            if (m := re.search(r"cannot fork worker \d .*, (\d+) time", line))
        ]
        assert steps == list(range(1, len(steps) + 1))
        assert len(steps) <= 4, server.logs()  # 0.5 + 0.5 + 1 s of back-off went by
        placeholder.kill()
        placeholder.wait()
        server.wait_ready()  # the next try forks it
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/pid").status_code == 200
        server.send(signal.SIGTERM)
        assert server.wait_exit(30) == 0, server.logs()
    finally:
        placeholder.kill()
        placeholder.wait()
        server.kill_group()


def test_sigterm_stops_a_manager_that_cannot_fork(mode: str) -> None:
    """The manager still listens while forks fail: a stop is not stuck behind them."""
    settle_nobody()
    server = as_nobody_with_nproc(3, mode, "--workers", "2", "--graceful-timeout", "30")
    try:
        server.wait_for(r"cannot fork worker 2 .*, 2 ")
        server.send(signal.SIGTERM)
        assert server.wait_exit(15) == 0, server.logs()  # not after the 30 s grace
        assert not server.children()
    finally:
        server.kill_group()


def test_a_master_that_cannot_fork_says_so_in_one_line(mode: str) -> None:
    settle_nobody()
    server = as_nobody_with_nproc(1, mode, "--workers", "1")
    try:
        assert server.wait_exit(30) == 1
        errors = [line for line in server.stderr if "ERROR" in line]
        assert len(errors) == 1, server.logs()
        assert "cannot fork the manager: Resource temporarily unavailable" in errors[0]
        assert not any("Traceback" in line for line in server.stderr)
    finally:
        server.kill_group()


def cpu_seconds(server: Server) -> float:
    """User + system CPU time of every process in the server's session."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in server.children():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def test_out_of_file_descriptors_backs_off_logs_once_and_recovers(mode: str) -> None:
    """EMFILE on accept, in the master (process mode) or a worker (base mode)."""
    launcher = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'swserve'] + sys.argv[1:])"
    )
    server = Server(
        [sys.executable, "-c", launcher, "wsgi_echo:app", "--bind", "127.0.0.1:0",
         "--workers", "1", "--app-dir", str(APPS), *MODE_ARGS[mode]],
    ).wait_ready()  # fmt: skip
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    socks = []
    try:
        socks = [connect(server.port, timeout=30) for _ in range(120)]
        for sock in socks:
            sock.sendall(request)
        server.wait_for("cannot accept: Too many open files; backing off")
        before, started = cpu_seconds(server), time.monotonic()
        time.sleep(1.5)  # a measurement window while it is out of descriptors, not a sync
        spent = cpu_seconds(server) - before
        assert spent < 0.6 * (time.monotonic() - started), f"busy loop: {spent:.2f}s of CPU"
        for sock in socks:  # reading each answer and closing frees descriptors for the next
            assert ResponseReader(sock).read().status == 200
            sock.close()
        assert exchange(server.port, request)[0].status == 200
        lines = [line for line in server.stderr if "cannot accept" in line]
        assert len(lines) <= 2, server.logs()  # at most one line every 5 s
        server.send(signal.SIGTERM)
        assert server.wait_exit(30) == 0
    finally:
        for sock in socks:
            sock.close()
        server.kill_group()
