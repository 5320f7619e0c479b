"""Soak, short: 20,000 keep-alive requests across 3 reloads and steady recycling.

The long run is ``python3 -m loadtests.soak`` (a million requests, 10,000
connections in waves, slopes of fds and RSS).  Here: once the load has stopped and
the reloads have finished, the master's and the manager's open file descriptors
are back to what they were before (a leak of one fd per worker replaced, or per
connection, would show).
"""

from __future__ import annotations

import http.client
import signal
import threading

import pytest

from loadtests.soak import fds
from tests.integration.conftest import Starter
from tests.integration.test_lifecycle import manager_pid, wait_until

pytestmark = [pytest.mark.modes("process", "base"), pytest.mark.timeout(120)]

TOTAL = 20_000
CLIENTS = 8


def hammer(port: int, count: int, done: list[int], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for _ in range(count):
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"status {response.status}")
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)  # a retired base-mode worker's keep-alive end
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        done.append(1)
    conn.close()


def test_fds_return_to_their_baseline_after_load_reloads_and_recycles(
    serve: Starter, mode: str
) -> None:
    server = serve("loadtests.apps.hello_wsgi:app", "--max-requests", "1500",
                   "--app-dir", ".", workers=2)  # fmt: skip
    manager = manager_pid(server)
    base = (fds(server.pid), fds(manager))
    done: list[int] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=hammer, args=(server.port, TOTAL // CLIENTS, done, errors))
        for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for i in (1, 2, 3):  # three reloads spread over the run
        wait_until(lambda i=i: len(done) >= TOTAL * i // 4, timeout=100, what="progress")
        start = len(server.stderr)
        server.send(signal.SIGHUP)
        server.wait_for("reload finished", timeout=60, start=start)
    for thread in threads:
        thread.join(100)
    assert len(done) == TOTAL
    assert len(errors) <= 50 if mode == "base" else not errors, errors[:10]
    wait_until(
        lambda: (fds(server.pid), fds(manager)) == base,
        timeout=20,
        what=f"fds back to {base} (now {(fds(server.pid), fds(manager))})",
    )
