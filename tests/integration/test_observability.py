"""Hooks in the right processes, the slow-request log, liveness, and the stats summary."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import APPS, Starter

pytestmark = pytest.mark.modes("process", "base")


def records(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_hooks_run_in_the_process_their_name_says(serve: Starter, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    server = serve(
        "wsgi_echo:app", "--hooks", str(APPS / "hooks_record.py"), workers=2,
        env={"HOOKS_LOG": str(log)},
    )  # fmt: skip
    tree = server.children()
    master = server.pid
    (manager,) = [p for p, t in tree.items() if t == "swserve: manager"]
    workers = {p for p, t in tree.items() if t.startswith("swserve: worker")}
    deadline = time.monotonic() + 10
    while not any(r[0] == "on_master_start" for r in records(log)):
        assert time.monotonic() < deadline
        time.sleep(0.01)  # polling a file the server writes, with a deadline
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    server.wait_for(f"pid {victim}\\) was killed by SIGKILL")
    assert server.stop() == 0
    got = records(log)
    by_hook: dict[str, list[list[str]]] = {}
    for r in got:
        by_hook.setdefault(r[0], []).append(r)
    assert [(r[1], int(r[2])) for r in by_hook["on_master_start"]] == [("master", master)]
    assert [(r[1], int(r[2])) for r in by_hook["on_shutdown"]] == [("master", master)]
    assert [(r[1], int(r[2])) for r in by_hook["on_manager_start"]] == [("manager", manager)]
    assert [(r[1], int(r[2])) for r in by_hook["on_manager_stop"]] == [("manager", manager)]
    starts = by_hook["on_worker_start"]
    assert {int(r[2]) for r in starts} >= workers
    assert all(r[1] == "worker" for r in starts)
    assert len(by_hook["on_worker_error"]) == 1, got
    (error,) = by_hook["on_worker_error"]
    assert error[1:3] == ["manager", str(manager)]
    assert int(error[4]) == victim
    assert error[6] == str(int(signal.SIGKILL))
    assert all(r[1] == "worker" for r in by_hook["on_worker_stop"])
    order = [r[0] for r in got]
    assert (
        order.index("on_manager_start")
        < order.index("on_worker_start")
        < order.index("on_master_start")
    )
    assert order[-1] == "on_shutdown"


def test_failing_worker_start_hook_is_a_boot_failure(serve: Starter, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text("def on_worker_start(server, worker_id):\n    raise RuntimeError('no db')\n")
    server = serve("wsgi_echo:app", "--hooks", str(hooks), workers=1, wait=False)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    assert "on_worker_start hook failed" in server.logs()


def test_unknown_hook_name_is_a_one_line_error(serve: Starter, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text("def on_worker_boot(server, worker_id):\n    pass\n")
    server = serve("wsgi_echo:app", "--hooks", str(hooks), workers=1, wait=False)
    server.expected_exit = 1
    assert server.wait_exit(30) == 1
    assert "unknown hook 'on_worker_boot'" in server.logs()
    assert "Traceback" not in server.logs()


def test_slowlog_prints_the_stack_of_a_sleeping_handler(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--slowlog-timeout", "0.5", workers=1)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(client.get("/sleep?s=2").status_code))
        t.start()
        line = server.wait_for(r"\[slowlog\] GET /sleep\?s=2 has run \d+\.\ds in worker 1")
        t.join(20)
    assert result == [200]  # the request was not stopped
    assert "worker 1" in line.group(0)
    server.wait_for(r"time\.sleep\(float\(query\.get")  # the app's own frame is in the stack
    assert sum("[slowlog]" in x for x in server.stderr) == 1  # logged once


def test_an_idle_worker_keeps_sending_heartbeats(serve: Starter) -> None:
    """An idle one-thread WSGI worker is alive, not hung: it must not be replaced."""
    # Heartbeats come each second, and the reactor's clock ticks each second, so a
    # heartbeat can look up to ~2 s old: 3 s leaves room on a loaded machine.
    server = serve("wsgi_echo:app", "--heartbeat-timeout", "3", workers=1)
    before = {p for p, t in server.children().items() if t.startswith("swserve: worker")}
    with pytest.raises(AssertionError):  # two heartbeat timeouts without the warning
        server.wait_for("has not answered", timeout=6.5)
    after = {p for p, t in server.children().items() if t.startswith("swserve: worker")}
    assert after == before
    assert httpx.get(server.url + "/echo", timeout=10).status_code == 200


def test_a_worker_with_a_blocked_loop_is_replaced(serve: Starter, mode: str) -> None:
    server = serve("hang:app", "--heartbeat-timeout", "2", "--graceful-timeout", "2", workers=1)
    (pid,) = [p for p, t in server.children().items() if t.startswith("swserve: worker")]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        if mode == "process":
            assert client.get("/block").status_code == 502  # the worker dies under it
        else:
            # base mode: the connection was the dead worker's own; nobody is left to answer
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/block")
        server.wait_for(rf"worker 1 \(pid {pid}\) has not answered")
        assert client.get("/ok").status_code == 200  # served by the replacement


def test_summary_line_at_reload_and_shutdown(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(7):
            assert client.get("/echo").status_code == 200
    server.send(signal.SIGHUP)
    server.wait_for(
        r"reload finished; 7 requests served, 0 in flight, 2 workers, recycled: reload 2"
    )
    assert server.stop() == 0
    server.wait_for(r"stopped; 7 requests served")
