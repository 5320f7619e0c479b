"""--process: user processes started after the workers, restarted with back-off, reloaded."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Starter
from tests.integration.test_metrics import metrics_port, one, poll
from tests.integration.test_tasks import pids, wait_file

pytestmark = pytest.mark.modes("process", "base")


def wait_lines(path: Path, count: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path}: fewer than {count} lines")


def test_a_crash_loop_stops_the_server(serve: Starter, tmp_path: Path) -> None:
    server = serve(
        "tasks_app:app", "--process", "tasks_app:crasher", env={"TASKS_DIR": str(tmp_path)}
    )
    server.expected_exit = 3
    assert server.wait_exit(60) == 3
    starts = [
        float(line.split()[0]) for line in (tmp_path / "crasher.log").read_text().splitlines()
    ]
    assert len(starts) == 5  # the crash-loop rule: 5 short runs in a row
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[-1] > gaps[0]  # the back-off grows: 0.1, 0.2, 0.4, 0.8 s
    assert gaps[-1] >= 0.6
    server.wait_for(
        r"user process 1 \(tasks_app:crasher, pid \d+\) exited with code 1; restarting in 0\.1s"
    )
    server.wait_for(r"restarting in 0\.8s")
    server.wait_for(r"exited 5 times in a row within 10s of starting: stopping")


def test_restarts_with_back_off_then_serves_and_uses_tasks(serve: Starter, tmp_path: Path) -> None:
    server = serve(
        "tasks_app:app",
        "--process", "tasks_app:crash_twice", "--task-workers", "1",
        "--metrics-bind", "127.0.0.1:0",
        env={"TASKS_DIR": str(tmp_path)},
    )  # fmt: skip
    port = metrics_port(server)
    consumer = tmp_path / "consumer.txt"
    first = wait_file(consumer)  # the third start stayed up and runs tasks
    assert len((tmp_path / "starts.log").read_text().splitlines()) == 3
    server.wait_for(r"RuntimeError: crash number 2")
    samples = poll(port, lambda s: one(s, "swserve_user_process_restarts_total") == 2, "restarts")
    assert one(samples, "swserve_tasks_total", outcome="ok") >= 1
    pid = int(first.split()[0])
    assert pid in pids(server, "swserve: process 1 tasks_app:crash_twice")
    workers = pids(server, "swserve: worker")
    task_workers = pids(server, "swserve: task worker")
    server.send(signal.SIGHUP)  # everything is replaced with the code on disk now
    deadline = time.monotonic() + 30
    while (consumer.read_text().split() or [str(pid)])[0] == str(pid):  # (read mid-write: "")
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)
    assert pid not in pids(server, "swserve: process")
    server.wait_for("reload finished;")  # the workers (not "task worker reload finished")
    assert pids(server, "swserve: worker").isdisjoint(workers)
    server.wait_for("task worker reload finished")
    assert pids(server, "swserve: task worker").isdisjoint(task_workers)


def test_shutdown_gives_user_processes_sigterm_and_the_grace(
    serve: Starter, tmp_path: Path
) -> None:
    server = serve(
        "tasks_app:app",
        "--process", "tasks_app:graceful", "--graceful-timeout", "10",
        env={"TASKS_DIR": str(tmp_path)},
    )  # fmt: skip
    log = tmp_path / "graceful.log"
    wait_lines(log, 1)
    server.send(signal.SIGTERM)
    assert server.wait_exit(40) == 0
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["up", "done"]


def test_a_bad_process_flag_is_one_line(serve: Starter) -> None:
    server = serve("tasks_app:app", "--process", "no-colon", wait=False)
    server.expected_exit = 2
    assert server.wait_exit(20) == 2
    assert any("--process 'no-colon': expected module:callable" in line for line in server.stderr)
    assert not any("Traceback" in line for line in server.stderr)


def test_a_user_process_does_not_outlive_a_killed_manager(serve: Starter, tmp_path: Path) -> None:
    server = serve(
        "tasks_app:app", "--process", "tasks_app:graceful", env={"TASKS_DIR": str(tmp_path)}
    )
    server.expected_exit = 1  # the master stops: its manager died
    log = tmp_path / "graceful.log"
    wait_lines(log, 1)
    (manager,) = pids(server, "swserve: manager")
    os.kill(manager, signal.SIGKILL)
    assert server.wait_exit(40) == 1
    # the kernel's SIGTERM (PR_SET_PDEATHSIG): it finished its work and exited
    assert [line.split()[0] for line in wait_lines(log, 2)] == ["up", "done"]


def test_an_async_user_process_awaits_tasks(serve: Starter, tmp_path: Path) -> None:
    server = serve(
        "tasks_app:app",
        "--process", "tasks_app:async_consumer", "--task-workers", "1",
        env={"TASKS_DIR": str(tmp_path)},
    )  # fmt: skip
    pid, result = wait_lines(tmp_path / "async.log", 1)[0].split()
    assert result == "42"
    assert int(pid) in pids(server, "swserve: process 1 tasks_app:async_consumer")


def test_a_user_process_that_cannot_be_imported_is_a_crash_loop(serve: Starter) -> None:
    server = serve("tasks_app:app", "--process", "no_such_module:run")
    server.expected_exit = 3
    assert server.wait_exit(60) == 3
    server.wait_for(r"user process 1: cannot run 'no_such_module:run': No module named")
    server.wait_for(r"exited 5 times in a row")
