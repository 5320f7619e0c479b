"""A crash loop after start-up: back-off, the healthy workers serve on, SIGHUP saves it.

Start-up keeps its rule (a worker that cannot boot stops the server with exit
code 3: ``test_process.py``); once the server has served, respawns that fail
to boot are spaced out (``manager/backoff.py``) and never stop it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, Starter
from tests.integration.test_lifecycle import wait_until, worker_pids
from tests.integration.test_metrics import METRICS_ARGS, get, metrics_port, one, poll

pytestmark = pytest.mark.modes("process", "base")


def serving_then_broken(
    serve: Starter, tmp_path: Path, workers: int
) -> tuple[Server, int, Path, list[int]]:
    """A server that has served; then a bad deploy lands on disk. → server, metrics port, …"""
    version = tmp_path / "version"
    version.write_text("old")
    server = serve(
        "versioned:app", *METRICS_ARGS, workers=workers, env={"VERSION_FILE": str(version)}
    )
    port = metrics_port(server)
    pids = sorted(worker_pids(server))
    version.write_text("broken")
    return server, port, version, pids


def test_a_crash_loop_backs_off_serves_on_and_a_sighup_ends_it(
    serve: Starter, tmp_path: Path
) -> None:
    server, port, version, (victim, healthy) = serving_then_broken(serve, tmp_path, 2)
    os.kill(victim, signal.SIGKILL)
    for failures, delay in ((2, "0.5"), (3, "1"), (4, "2")):  # one line per step
        server.wait_for(rf"failed to boot {failures} times in a row .*next try in {delay}s")
    assert server.proc.poll() is None  # it did not halt
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(10):  # every request is served by the healthy worker
            response = client.get("/")
            assert response.status_code == 200
            assert response.text == f"old {healthy}"
    ready = get(port, "/readyz")
    assert ready.status_code == 200
    assert "degraded" in ready.text
    samples = poll(port, lambda s: one(s, "swserve_workers_backing_off") == 1, "back-off gauge")
    assert one(samples, "swserve_worker_boot_failures_total") >= 3
    # the fix lands: a SIGHUP resets the back-off and tries it at once
    version.write_text("new")
    server.send(signal.SIGHUP)
    server.wait_for("back-off reset, trying the new code now")
    server.wait_for("reload finished", timeout=30)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        wait_until(
            lambda: {client.get("/").text.split()[0] for _ in range(6)} == {"new"},
            what="every worker on the new code",
        )
    assert get(port, "/readyz").text == "ready\n"
    poll(port, lambda s: one(s, "swserve_workers_backing_off") == 0, "back-off over")


def test_with_no_worker_left_readyz_says_why_and_a_sighup_recovers(
    serve: Starter, tmp_path: Path
) -> None:
    server, port, version, (pid,) = serving_then_broken(serve, tmp_path, 1)
    os.kill(pid, signal.SIGKILL)
    server.wait_for(r"failed to boot 3 times in a row")
    ready = get(port, "/readyz")
    assert ready.status_code == 503
    assert "back-off" in ready.text
    assert server.proc.poll() is None  # no halt: it waits for a fix
    version.write_text("fixed")
    server.send(signal.SIGHUP)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        wait_until(lambda: client.get("/").text.startswith("fixed"), what="the fixed code")
    wait_until(lambda: get(port, "/readyz").status_code == 200, what="ready again")
