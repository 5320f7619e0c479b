"""Settings and signals that had no test of their own (issue 17): each is shown
doing what docs/settings.md and docs/signals.md say, on the live server.

--factory, --lifespan off, --max-concurrent-recycles above 1, SIGUSR2 to the
master, response-header validation (WSGI and ASGI), orphan reaping as PID 1,
and the Dockerfile's HEALTHCHECK command against a real server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import exchange
from tests.integration.conftest import Server, Starter, swserve_args
from tests.integration.test_metrics import METRICS_ARGS, metrics_port

pytestmark = pytest.mark.modes("process", "base")

ROOT = Path(__file__).resolve().parents[2]


def test_factory_is_called_once_per_worker(serve: Starter) -> None:
    server = serve("factory_app:create_app", "--factory", workers=1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text == "made by the factory, 1 call(s)"
        assert client.get("/").text == "made by the factory, 1 call(s)"


def test_without_factory_the_factory_is_not_called(serve: Starter) -> None:
    """The same spec without --factory is taken for the app itself (and fails to serve)."""
    server = serve("factory_app:create_app", workers=1)
    [response] = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.status == 500


def test_lifespan_off_never_runs_the_lifespan(serve: Starter) -> None:
    """lifespan_fail's startup fails: on by default that stops the server (exit 3)."""
    server = serve("lifespan_fail:app", "--lifespan", "off", workers=1)
    [response] = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.status == 200
    assert "database unreachable" not in server.logs()


def test_lifespan_auto_runs_it(serve: Starter) -> None:
    server = serve("lifespan_fail:app", workers=1, wait=False)
    server.expected_exit = 3
    assert server.wait_exit(30) == 3
    assert "database unreachable" in server.logs()


def worker_count(server: Server) -> int:
    return sum(1 for title in server.children().values() if title.startswith("swserve: worker"))


def test_max_concurrent_recycles_replaces_two_workers_at_once(
    serve: Starter, tmp_path: Path
) -> None:
    """With 2, a reload forks both replacements before either old worker goes:
    four workers at once (with 1, never more than three).  Each import takes a
    second, so the four are there long enough to be seen."""
    version = tmp_path / "version"
    version.write_text("a")
    server = serve(
        "versioned:app", "--max-concurrent-recycles", "2", workers=2,
        env={"VERSION_FILE": str(version), "IMPORT_DELAY": "1"},
    )  # fmt: skip
    server.send(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while worker_count(server) < 4:
        assert time.monotonic() < deadline, "never two replacements at once"
        time.sleep(0.02)  # polling the process table, with a deadline
    server.wait_for("reload finished", timeout=30)


def test_sigusr2_to_the_master_is_logged_and_changes_nothing(serve: Starter) -> None:
    server = serve(workers=1)
    before = {p for p, t in server.children().items() if t.startswith("swserve: worker")}
    server.send(signal.SIGUSR2)
    server.wait_for("SIGUSR2: there are no task workers to reload; ignored")
    [response] = exchange(server.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 200
    after = {p for p, t in server.children().items() if t.startswith("swserve: worker")}
    assert after == before  # no reload, no restart
    assert server.stop() == 0


@pytest.mark.parametrize("app", ["bad_headers:wsgi", "bad_headers:asgi"])
@pytest.mark.parametrize("path", ["/newline", "/name", "/nul"])
def test_invalid_response_headers_never_reach_the_wire(serve: Starter, app: str, path: str) -> None:
    """A header with CR/LF or NUL in its value, or a name that is not a token, makes
    the response a 500 (docs/server-behavior.md: header validation); the next
    request on the connection is served."""
    server = serve(app, workers=1)
    raw = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()
    bad, good = exchange(server.port, raw, count=2)
    assert bad.status == 500
    assert all(name.lower() not in ("x-bad", "x bad", "set-cookie") for name, _ in bad.headers)
    assert (good.status, good.body) == (200, b"fine")


def healthcheck_command() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.MULTILINE)
    assert match, "no exec-form HEALTHCHECK in the Dockerfile"
    command = json.loads(match.group(1))
    assert command[0] == "python"
    return [sys.executable, *command[1:]]  # the image's python is ours here


def run_healthcheck(bind: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWSERVE_METRICS_BIND": bind}
    return subprocess.run(
        healthcheck_command(), env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_dockerfile_healthcheck_against_a_real_server(serve: Starter) -> None:
    server = serve("wsgi_echo:app", *METRICS_ARGS, workers=1)
    port = metrics_port(server)
    ok = run_healthcheck(f"0.0.0.0:{port}")  # the image binds all addresses
    assert ok.returncode == 0, ok.stderr
    server.send(signal.SIGTERM)
    server.wait_exit(30)
    down = run_healthcheck(f"0.0.0.0:{port}")
    assert down.returncode == 1
    assert down.stderr.startswith("not ready:")


def zombies_of(pid: int) -> list[int]:
    out = []
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in map(int, children):
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            out.append(child)
    return out


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare(1) to run swserve as PID 1 of a PID namespace",
)
def test_orphans_are_reaped_as_pid_1(mode: str) -> None:
    """In a container swserve is PID 1: orphans are re-parented to it and it reaps them."""
    args = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        *swserve_args("orphans:app", workers=1, mode=mode),
    ]
    server = Server(args)
    code = None
    try:
        server.wait_ready()
        unshare_children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
        (master,) = map(int, unshare_children.split())  # PID 1 inside the namespace
        assert "swserve: master" in Path(f"/proc/{master}/cmdline").read_text().replace("\0", " ")
        for _ in range(3):
            [response] = exchange(server.port, b"GET /orphan HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response.status == 200
        server.wait_for_count("^orphan: exiting", 3, stream="stdout")
        deadline = time.monotonic() + 10  # the reaper looks once a second
        while zombies_of(master):
            assert time.monotonic() < deadline, f"orphans left as zombies: {zombies_of(master)}"
            time.sleep(0.05)  # polling the process table, with a deadline
        os.kill(master, signal.SIGTERM)  # unshare(1) does not pass signals on
        code = server.wait_exit(30)  # unshare exits with its child's status
    finally:
        server.kill_group()
    assert code == 0, server.logs()
