"""--dispatch ip / key:HEADER / key:cookie:NAME with real clients (issue #19).

Clients connect from several loopback source addresses (127.0.0.2, 127.0.0.3, ...
are all loopback on Linux), each request on a fresh connection so that nothing
but the key can keep it on one worker.  ``reactors`` runs the same tests with a
second reactor process: both reactors must map a key to the same worker.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "reactors")

ADDRESSES = [f"127.0.0.{i}" for i in range(2, 12)]
APP = "affinity_app:app"


def get(
    server: Server,
    path: str = "/who",
    *,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    timeout: float = 20,
) -> tuple[int, str]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def who(server: Server, **kwargs: object) -> tuple[int, int, str]:
    """(pid, slot, REMOTE_ADDR) of the worker that answered."""
    status, body = get(server, **kwargs)  # type: ignore[arg-type]
    assert status == 200, body
    pid, slot, addr = body.split()
    return int(pid), int(slot), addr


def test_each_client_address_keeps_meeting_one_worker(serve: Starter) -> None:
    server = serve(APP, "--dispatch", "ip", "--threads", "1", workers=4)
    seen: dict[str, set[int]] = {}
    for _ in range(4):
        for address in ADDRESSES:
            pid, _, remote = who(server, source=address)
            assert remote == address
            seen.setdefault(address, set()).add(pid)
    assert all(len(pids) == 1 for pids in seen.values()), seen
    spread = {next(iter(pids)) for pids in seen.values()}
    assert len(spread) >= 2, seen  # 10 addresses over 4 workers: not all on one


def test_the_forwarded_client_of_a_trusted_proxy_is_the_key(serve: Starter) -> None:
    # 127.0.0.1 is trusted by default (--forwarded-allow-ips); 127.0.0.2 is not
    server = serve(APP, "--dispatch", "ip", "--threads", "1", workers=4)
    clients = [f"203.0.113.{i}" for i in range(1, 13)]
    seen: dict[str, set[int]] = {}
    for _ in range(3):
        for client in clients:
            pid, _, remote = who(server, headers={"X-Forwarded-For": client})
            assert remote == client  # what the app sees is what dispatch used
            seen.setdefault(client, set()).add(pid)
    assert all(len(pids) == 1 for pids in seen.values()), seen
    assert len({next(iter(p)) for p in seen.values()}) >= 2, seen
    # an untrusted peer cannot pick its worker with the header: its own address counts
    untrusted = {
        who(server, source="127.0.0.2", headers={"X-Forwarded-For": c})[0] for c in clients
    }
    assert len(untrusted) == 1


def test_a_header_key_and_a_cookie_key(serve: Starter) -> None:
    for dispatch, header in (("key:X-Tenant", "X-Tenant"), ("key:cookie:sid", "Cookie")):
        server = serve(APP, "--dispatch", dispatch, "--threads", "1", workers=3)
        seen: dict[str, set[int]] = {}
        for round_ in range(3):
            for i in range(9):
                value = f"t{i}" if header == "X-Tenant" else f"theme=dark; sid=t{i}"
                # from different addresses: the key, not the address, decides
                source = ADDRESSES[(i + round_) % len(ADDRESSES)]
                pid, _, _ = who(server, source=source, headers={header: value})
                seen.setdefault(value, set()).add(pid)
        assert all(len(pids) == 1 for pids in seen.values()), (dispatch, seen)
        assert len({next(iter(p)) for p in seen.values()}) >= 2, (dispatch, seen)
        server.stop()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    yield fifo
    try:  # a failed test may leave a request held: release it, so the server can stop
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # ENXIO: nobody holds it
    os.write(fd, b"go")
    os.close(fd)


def open_gate(fifo: Path) -> None:
    with open(fifo, "wb") as f:
        f.write(b"go")


def tenants_by_worker(server: Server, n: int = 40) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for i in range(n):
        pid, _, _ = who(server, headers={"X-Tenant": f"t{i}"})
        out.setdefault(pid, []).append(f"t{i}")
    return out


class Pending:
    """A request sent in a thread: its answer, once it comes."""

    def __init__(self, server: Server, path: str, headers: dict[str, str]) -> None:
        self.result: tuple[int, str] | None = None
        self.thread = threading.Thread(target=self._run, args=(server, path, headers))
        self.thread.start()

    def _run(self, server: Server, path: str, headers: dict[str, str]) -> None:
        self.result = get(server, path, headers=headers, timeout=30)

    def join(self) -> tuple[int, str]:
        self.thread.join(30)
        assert self.result is not None
        return self.result


def test_a_request_waits_for_its_busy_worker_without_blocking_the_others(
    serve: Starter, gate: Path
) -> None:
    server = serve(APP, "--dispatch", "key:X-Tenant", "--threads", "1", workers=2)
    owners = tenants_by_worker(server)
    assert len(owners) == 2, owners
    (pid_a, tenants_a), (pid_b, tenants_b) = owners.items()
    start = len(server.stdout)
    held = Pending(server, f"/wait?g={gate}", {"X-Tenant": tenants_a[0]})
    server.wait_for(f"affinity: waiting {pid_a}", stream="stdout", start=start)
    # A is busy: a request keyed to A waits in the reactor, for A ...
    waiting = Pending(server, "/who", {"X-Tenant": tenants_a[1]})
    # ... while requests keyed to B, and requests without a key (idle), are served by B now
    assert int(who(server, headers={"X-Tenant": tenants_b[0]})[0]) == pid_b
    for _ in range(3):
        assert who(server)[0] == pid_b
    assert waiting.result is None  # still waiting for A, though B was free all along
    open_gate(gate)
    assert held.join()[0] == 200
    status, body = waiting.join()
    assert status == 200
    assert int(body.split()[0]) == pid_a


def test_max_queued_requests_bounds_the_wait(serve: Starter, gate: Path, mode: str) -> None:
    if mode == "reactors":
        pytest.skip("the bound is per reactor, and the test cannot choose a connection's reactor")
    server = serve(
        APP, "--dispatch", "key:X-Tenant", "--threads", "1", "--max-queued-requests", "1",
        "--metrics-bind", "127.0.0.1:0", workers=2,
    )  # fmt: skip
    metrics = int(server.wait_for(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    owners = tenants_by_worker(server)
    (pid_a, tenants_a), (pid_b, tenants_b) = owners.items()
    start = len(server.stdout)
    held = Pending(server, f"/wait?g={gate}", {"X-Tenant": tenants_a[0]})
    server.wait_for(f"affinity: waiting {pid_a}", stream="stdout", start=start)
    first = Pending(server, "/who", {"X-Tenant": tenants_a[1]})
    wait_queued(metrics, 1)
    status, _ = get(server, headers={"X-Tenant": tenants_a[2]})
    assert status == 503, "a second request waiting for A is refused at once"
    assert who(server, headers={"X-Tenant": tenants_b[0]})[0] == pid_b
    open_gate(gate)
    assert held.join()[0] == 200
    status, body = first.join()
    assert status == 200
    assert int(body.split()[0]) == pid_a


def wait_queued(port: int, count: int, timeout: float = 20.0) -> None:
    """Poll /metrics until ``count`` requests wait in the reactor, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        if f"swserve_requests_queued {count}" in text:
            return
        assert time.monotonic() < deadline, f"never {count} queued:\n{text}"
        time.sleep(0.05)  # polling the server's own gauge, with a deadline


def test_recycling_a_worker_moves_none_of_the_keys(serve: Starter) -> None:
    server = serve(APP, "--dispatch", "ip", "--threads", "1", workers=3)
    before = {a: who(server, source=a)[1] for a in ADDRESSES}
    pids = {who(server, source=a)[0] for a in ADDRESSES}
    start = len(server.stderr)
    server.send(signal.SIGHUP)  # every worker is replaced, each in its own slot
    server.wait_for("reload finished", start=start)
    after = {}
    for a in ADDRESSES:
        pid, slot, _ = who(server, source=a)
        assert pid not in pids  # a new worker ...
        after[a] = slot
    assert after == before  # ... in the same slot: every address meets the same slot


def test_base_mode_refuses_the_affinity_modes(tmp_path: Path) -> None:
    for dispatch in ("ip", "key:X-Tenant", "key:cookie:sid"):
        result = subprocess.run(
            [sys.executable, "-m", "swserve", "--mode", "base", "--dispatch", dispatch],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
        assert result.returncode == 2
        assert f"--dispatch {dispatch} is a process-mode feature" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_bad_dispatch_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swserve", "--dispatch", "key:"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "expected idle, round-robin, fd, ip, key:HEADER or key:cookie:NAME" in result.stderr
    assert "Traceback" not in result.stderr
