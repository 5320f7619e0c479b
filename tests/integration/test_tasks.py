"""Task workers with real processes: results, errors, dispatch, loss, reloads, recycling, shutdown."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, Starter
from tests.integration.test_metrics import metrics_port, one, poll

pytestmark = pytest.mark.modes("process", "base")

TIMEOUT = httpx.Timeout(30.0)


_clients = threading.local()  # one keep-alive client per thread: httpx.get() builds one each time
_opened: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()
    _clients.__dict__.clear()


def call(server: Server, fn: str, *args: Any, path: str = "/call", **query: Any) -> Any:
    params = {"fn": fn, "args": json.dumps(list(args)), **query}
    client = getattr(_clients, "client", None)
    if client is None or client.base_url != server.url:
        client = _clients.client = httpx.Client(base_url=server.url, timeout=TIMEOUT)
        _opened.append(client)  # list.append is atomic: threads may add at once
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def pids(server: Server, title: str) -> set[int]:
    return {pid for pid, t in server.children().items() if t.startswith(title)}


def wait_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_results_and_remote_exceptions(serve: Starter) -> None:
    server = serve("tasks_app:app", "--task-workers", "2")
    assert len(pids(server, "swserve: task worker")) == 2
    assert call(server, "add", 2, 3) == {"ok": 5}
    assert call(server, "echo", {"a": [1, 2.5, None]}) == {"ok": {"a": [1, 2.5, None]}}
    assert call(server, "async_add", 4, 5) == {"ok": 9}  # an async def task
    assert call(server, "nested", 4) == {"ok": 50}  # a task that runs a task
    assert call(server, "whoami")["ok"] in pids(server, "swserve: task worker")

    raised = call(server, "boom", "no good")
    assert raised["error"] == "ValueError"  # the same type, rebuilt
    assert raised["message"] == "no good"
    assert raised["cause"] == "RemoteTraceback"
    assert "in boom" in raised["remote"]  # the task worker's own traceback
    assert "raise ValueError(message)" in raised["remote"]

    odd = call(server, "odd")  # an exception that pickle cannot rebuild
    assert odd["error"] == "TaskFailed"
    assert odd["message"] == "tasks_app.Odd: odd 1+2"
    assert "in odd" in odd["remote"]

    closure = httpx.get(server.url + "/lambda", timeout=TIMEOUT).json()
    assert closure["error"] == "TypeError"
    assert "module-level function" in closure["message"]
    server.wait_for(r"task tasks_app:boom failed on task worker \d: ValueError: no good")


def test_wsgi_threads_share_one_link_safely(serve: Starter) -> None:
    server = serve("tasks_app:wsgi", "--task-workers", "2", "--threads", "8", workers=1)
    # 8 threads of one worker wait on the same link at once; each must get its own answer
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: call(server, "add", i, 1000), range(200)))
    assert results == [{"ok": i + 1000} for i in range(200)]
    raised = call(server, "boom", "from wsgi")
    assert (raised["error"], raised["cause"]) == ("ValueError", "RemoteTraceback")
    timed_out = call(server, "nap", 2, timeout=0.5)  # the caller's own timeout
    assert timed_out["error"] == "TaskTimeout"


def test_a_cpu_bound_task_does_not_stall_the_asgi_worker(serve: Starter) -> None:
    server = serve("tasks_app:app", "--task-workers", "1", workers=1)
    result: dict[str, Any] = {}
    spinner = threading.Thread(target=lambda: result.update(call(server, "spin", 3)))
    spinner.start()
    # the single ASGI worker serves other requests while its task burns a CPU elsewhere
    latencies = []
    answered = []  # when each fast request was answered (the server's clock)
    deadline = time.monotonic() + 2.0
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        while time.monotonic() < deadline:
            start = time.monotonic()
            answered.append(client.get("/fast").json()["ok"])
            latencies.append(time.monotonic() - start)
    spinner.join(30)
    assert "ok" in result, result
    assert answered[-1] < result["ok"]  # answered before the task finished
    assert len(latencies) > 10
    assert sorted(latencies)[len(latencies) // 2] < 0.5  # generous: ~ms when nothing stalls


def test_queue_full_and_task_timeout(serve: Starter, tmp_path: Path) -> None:
    server = serve(
        "tasks_app:app",
        "--task-workers", "1", "--task-queue-size", "1", "--task-timeout", "5",
        "--metrics-bind", "127.0.0.1:0",
        workers=1,
    )  # fmt: skip
    port = metrics_port(server)
    marker = tmp_path / "running"
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(call, server, "nap", 3, str(marker))
        wait_file(marker)  # the only task worker is busy
        second = pool.submit(call, server, "add", 1, 1)  # waits in the queue
        poll(port, lambda s: one(s, "swserve_task_queue_depth") == 1, "a queued task")
        full = call(server, "add", 2, 2)  # answered at once: the first still naps
        assert full["error"] == "TaskQueueFull"
        assert "the task queue is full (1 tasks wait)" in full["message"]
        assert first.result()["ok"] > 0
        assert second.result() == {"ok": 2}
    before = pids(server, "swserve: task worker")
    timed_out = call(server, "nap", 30)
    assert timed_out["error"] == "TaskTimeout"
    assert "--task-timeout 5s" in timed_out["message"]
    server.wait_for(r"task tasks_app:nap ran past --task-timeout 5s")
    assert call(server, "add", 3, 3) == {"ok": 6}  # on the replacement
    assert pids(server, "swserve: task worker").isdisjoint(before)
    samples = poll(port, lambda s: one(s, "swserve_tasks_total", outcome="timeout") == 1, "timeout")
    assert one(samples, "swserve_tasks_rejected_total") == 1
    assert one(samples, "swserve_tasks_total", outcome="ok") == 3
    assert one(samples, "swserve_task_workers_alive") == 1
    assert one(samples, "swserve_task_duration_seconds_count") == 4


def test_kill_9_of_a_task_worker_mid_task(serve: Starter, tmp_path: Path) -> None:
    server = serve("tasks_app:app", "--task-workers", "1", workers=1)
    marker = tmp_path / "running"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(call, server, "nap", 30, str(marker))
        victim = int(wait_file(marker))
        os.kill(victim, signal.SIGKILL)
        lost = pending.result()
    assert lost["error"] == "TaskWorkerLost"
    assert f"pid {victim}" in lost["message"]
    replacement = call(server, "whoami")["ok"]
    assert replacement != victim
    assert call(server, "add", 1, 2) == {"ok": 3}
    server.wait_for(rf"task worker 1 \(pid {victim}\) was killed by SIGKILL")


def _steady_load(server: Server, stop: threading.Event, results: list[Any]) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        while not stop.is_set():
            params = {"fn": "whoami", "args": "[]"}
            results.append(client.get("/call", params=params).json())


def test_sigusr2_reloads_only_the_task_workers_under_load(serve: Starter) -> None:
    server = serve("tasks_app:app", "--task-workers", "2")
    workers = pids(server, "swserve: worker")
    old = pids(server, "swserve: task worker")
    stop = threading.Event()
    results: list[Any] = []
    load = [threading.Thread(target=_steady_load, args=(server, stop, results)) for _ in range(4)]
    for thread in load:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(results) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        mark = len(server.stderr)
        server.send(signal.SIGUSR2)
        server.wait_for("task worker reload finished", start=mark)
        done = len(results)
        while len(results) < done + 50 and time.monotonic() < deadline + 20:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in load:
            thread.join(30)
    failed = [r for r in results if "ok" not in r]
    assert failed == []
    new = pids(server, "swserve: task worker")
    assert len(new) == 2
    assert new.isdisjoint(old)  # every task worker replaced
    assert pids(server, "swserve: worker") == workers  # and no worker
    seen = {r["ok"] for r in results}
    assert seen & old  # the load ran on both generations
    assert seen & new
    assert not any("reloading the workers" in line for line in server.stderr)


def test_task_max_requests_recycles_under_load_without_failures(serve: Starter) -> None:
    server = serve("tasks_app:app", "--task-workers", "2", "--task-max-requests", "20")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: call(server, "whoami"), range(400)))
    assert [r for r in results if "ok" not in r] == []
    # 400 tasks over 2 task workers recycled after 20-30 tasks each: many generations
    assert len({r["ok"] for r in results}) >= 6


def test_shutdown_waits_for_a_running_task(serve: Starter, tmp_path: Path) -> None:
    server = serve("tasks_app:app", "--task-workers", "1", "--graceful-timeout", "20", workers=1)
    marker = tmp_path / "running"
    assert call(server, "nap", 2, str(marker), path="/nowait") == {"ok": None}
    wait_file(marker)
    server.send(signal.SIGTERM)
    assert server.wait_exit(40) == 0
    assert (tmp_path / "running.done").exists()  # it ran to the end


def test_shutdown_stops_waiting_at_the_graceful_timeout(serve: Starter, tmp_path: Path) -> None:
    server = serve("tasks_app:app", "--task-workers", "1", "--graceful-timeout", "1", workers=1)
    marker = tmp_path / "running"
    call(server, "nap", 60, str(marker), path="/nowait")
    wait_file(marker)
    started = time.monotonic()
    server.send(signal.SIGTERM)
    assert server.wait_exit(40) == 0
    assert time.monotonic() - started < 15  # ~2 graceful timeouts, not the task's 60 s
    assert not (tmp_path / "running.done").exists()
    server.wait_for(r"task worker 1 \(pid \d+\) did not stop in time: killing it")


def test_hooks_and_titles(serve: Starter, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        "import os\n"
        "def _w(line):\n"
        "    with open(os.environ['HOOKS_LOG'], 'a') as f:\n"
        "        f.write(line + '\\n')\n"
        "def on_task_worker_start(server, slot):\n"
        "    _w(f'start {server.role} {slot} {os.getpid()}')\n"
        "def on_task_worker_stop(server, slot):\n"
        "    _w(f'stop {server.role} {slot} {os.getpid()}')\n"
    )
    log = tmp_path / "hooks.log"
    server = serve(
        "tasks_app:app",
        "--task-workers", "2", "--hooks", str(hooks),
        env={"HOOKS_LOG": str(log)},
    )  # fmt: skip
    titles = sorted(t for t in server.children().values() if "task worker" in t)
    assert titles == ["swserve: task worker 1", "swserve: task worker 2"]
    assert call(server, "add", 1, 1) == {"ok": 2}
    assert server.stop() == 0
    lines = sorted(log.read_text().splitlines())
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "start task worker 1",
        "start task worker 2",
        "stop task worker 1",
        "stop task worker 2",
    ]


def test_no_task_workers_means_no_process_and_one_clear_error(serve: Starter) -> None:
    server = serve("tasks_app:app")
    assert pids(server, "swserve: task worker") == set()
    answer = call(server, "add", 1, 1)
    assert answer["error"] == "TasksUnavailable"
    assert "--task-workers N" in answer["message"]


def test_a_task_outlives_its_caller_and_its_result_is_dropped(
    serve: Starter, tmp_path: Path
) -> None:
    server = serve("tasks_app:app", "--task-workers", "1", "--log-level", "debug", workers=1)
    marker = tmp_path / "running"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.get, server.url + "/call", params={
            "fn": "nap", "args": json.dumps([1.0, str(marker)])}, timeout=TIMEOUT)  # fmt: skip
        wait_file(marker)
        (caller,) = pids(server, "swserve: worker")
        os.kill(caller, signal.SIGKILL)  # the caller goes; its task runs on
        try:  # process mode: a 502 from the reactor; base mode: the connection just closes
            assert pending.result().status_code == 502
        except httpx.RemoteProtocolError:
            pass
    wait_file(tmp_path / "running.done")
    server.wait_for(r"task tasks_app:nap: dropped \(its caller stopped waiting\)")
    assert call(server, "add", 1, 1) == {"ok": 2}  # from the replacement worker


def test_a_failing_task_worker_hook_stops_the_start(serve: Starter, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text("def on_task_worker_start(server, slot):\n    raise RuntimeError('no')\n")
    server = serve("tasks_app:app", "--task-workers", "1", "--hooks", str(hooks), wait=False)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    server.wait_for(r"task worker 1 failed to boot")
    assert not any("Listening on" in line for line in server.stderr)
