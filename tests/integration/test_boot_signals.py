"""Signals that arrive while the workers are still importing the app.

SIGTERM, SIGINT and SIGQUIT stop the server cleanly (exit 0, nothing left
behind); a SIGHUP reloads, and "reload finished" is logged only once the
workers that were booting when it came have been replaced: scripts and tests
wait on that line.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import APPS, Server, Starter
from tests.integration.test_lifecycle import wait_until, worker_pids
from tests.integration.test_process import wait_for_file

pytestmark = pytest.mark.modes("process", "base")


def booting(serve: Starter, tmp_path: Path, delay: str = "3") -> tuple[Server, set[int]]:
    """A server whose workers are importing a slow app (not yet ready)."""
    version = tmp_path / "version"
    version.write_text("v1")
    server = serve(
        "versioned:app",
        workers=2,
        wait=False,
        env={"VERSION_FILE": str(version), "IMPORT_DELAY": delay},
    )
    wait_until(lambda: len(worker_pids(server)) == 2, what="two booting workers")
    assert not any("Listening on" in line for line in server.stderr)
    return server, worker_pids(server)


def assert_nothing_left(server: Server) -> None:
    deadline = time.monotonic() + 10
    while server.children():
        assert time.monotonic() < deadline, f"left behind: {server.children()}"
        time.sleep(0.05)  # polling the process table with a deadline


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_a_stop_signal_during_boot_exits_cleanly(
    serve: Starter, tmp_path: Path, sig: signal.Signals
) -> None:
    server, _ = booting(serve, tmp_path)
    server.send(sig)
    assert server.wait_exit(30) == 0, server.logs()
    assert_nothing_left(server)
    assert not any("Traceback" in line for line in server.stderr), server.logs()


def test_sighup_during_boot_replaces_the_booting_workers_before_reload_finished(
    serve: Starter, tmp_path: Path
) -> None:
    server, first = booting(serve, tmp_path, delay="1.5")
    server.send(signal.SIGHUP)
    server.wait_for("reload finished", timeout=40)
    assert not (first & worker_pids(server)), "reload finished before the booting workers left"
    finished = next(i for i, line in enumerate(server.stderr) if "reload finished" in line)
    listening = next(i for i, line in enumerate(server.stderr) if "Listening on" in line)
    assert listening < finished
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pids = {int(client.get("/").text.split()[1]) for _ in range(6)}
    assert not (pids & first)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_before_the_master_s_loop_is_kept_not_fatal(
    serve: Starter, tmp_path: Path, sig: signal.Signals
) -> None:
    """While the --hooks module imports, the loop has no handlers yet: the signal waits."""
    marker = tmp_path / "importing"
    server = serve(
        "wsgi_echo:app",
        "--hooks",
        str(APPS / "slow_hooks.py"),
        workers=1,
        wait=False,
        env={"SLOW_HOOKS_MARKER": str(marker), "SLOW_HOOKS_DELAY": "1"},
    )
    wait_for_file(marker)
    server.send(sig)
    if sig == signal.SIGHUP:  # a reload once the server runs, not a death by SIGHUP
        server.wait_ready()
        server.wait_for("reload finished", timeout=30)
        return
    assert server.wait_exit(30) == 0, server.logs()
    assert_nothing_left(server)
    assert not any("Traceback" in line for line in server.stderr), server.logs()
