"""The ``serve`` fixture: the real swserve as a subprocess on 127.0.0.1, port 0.

Readiness is the ``Listening on http(s)://127.0.0.1:PORT`` line on stderr, never
a sleep.  Every server runs in its own session (process group); teardown
sends SIGTERM, waits, checks the exit code, and kills the whole group if
anything is left.  Logs are attached to failures.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
LISTENING = re.compile(r"Listening on (https?)://127\.0\.0\.1:(\d+)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pytestmark = pytest.mark.modes("process", "base")`` runs a module's tests in each mode."""
    marker = metafunc.definition.get_closest_marker("modes")
    if marker is not None and "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", marker.args, scope="module")


@pytest.fixture
def mode() -> str:
    """The server mode the ``serve`` fixture starts (parametrized by the ``modes`` mark)."""
    return "process"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)


class Server:
    """One running swserve; lines of stderr and stdout are collected as they come."""

    def __init__(
        self,
        args: list[str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.args = args
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            pass_fds=pass_fds,  # inherited listening sockets (fd://N, systemd activation)
        )
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port = 0
        self.scheme = "http"
        self.expected_exit: int | None = 0

    def _pump(self, stream: object, lines: list[str]) -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            with self._cond:
                lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def wait_for(
        self, pattern: str, timeout: float = 20.0, *, stream: str = "stderr", start: int = 0
    ) -> re.Match[str]:
        """Wait until a line matching ``pattern`` appears (from line ``start`` on)."""
        rx = re.compile(pattern)
        lines = self.stderr if stream == "stderr" else self.stdout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in lines[start:]:
                    match = rx.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.proc.poll() is not None and not any(r.is_alive() for r in self._readers)
                ):
                    raise AssertionError(
                        f"no line matching {pattern!r} in {stream}:\n{self.logs()}"
                    )
                self._cond.wait(min(remaining, 0.2))

    def wait_for_count(
        self, pattern: str, count: int, timeout: float = 20.0, *, stream: str = "stderr"
    ) -> list[str]:
        """Wait until ``count`` lines match ``pattern``; return them."""
        rx = re.compile(pattern)
        lines = self.stderr if stream == "stderr" else self.stdout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [line for line in lines if rx.search(line)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{len(found)} of {count} lines matching {pattern!r} in {stream}:\n"
                        f"{self.logs()}"
                    )
                self._cond.wait(min(remaining, 0.2))

    def wait_ready(self, timeout: float = 30.0) -> Server:
        match = self.wait_for(LISTENING.pattern, timeout)
        self.scheme, self.port = match.group(1), int(match.group(2))
        return self

    def send(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 40.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill_group()

    def kill_group(self) -> None:
        # Once the leader has been reaped its pid may be reused, so a killpg by that number
        # could hit a stranger's group: kill the members still in the server's session instead
        # (a session id stays taken while any member lives).
        targets = [-self.proc.pid] if self.proc.returncode is None else list(self.children())
        for target in targets:
            try:
                if target < 0:
                    os.killpg(-target, signal.SIGKILL)
                else:
                    os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def logs(self) -> str:
        return (
            "--- stderr ---\n"
            + "\n".join(self.stderr)
            + "\n--- stdout ---\n"
            + "\n".join(self.stdout)
        )

    def children(self) -> dict[int, str]:
        """pid → process title of every process in the server's session."""
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == self.proc.pid:  # session id
                out[int(entry.name)] = cmdline
        return out


Starter = Callable[..., Server]


# what each ``mode`` of the ``modes`` mark means on the command line
MODE_ARGS: dict[str, tuple[str, ...]] = {
    "process": (),
    "base": ("--mode", "base"),
    "reactors": ("--reactors", "2"),  # process mode with a second reactor process
    "h11": ("--http", "h11"),  # process mode with the pure-Python parser
}


def swserve_args(app: str, *extra: str, workers: int = 2, mode: str = "process") -> list[str]:
    extra = (*MODE_ARGS[mode], *extra)
    return [
        sys.executable, "-m", "swserve", app,
        "--bind", "127.0.0.1:0", "--workers", str(workers), "--app-dir", str(APPS), *extra,
    ]  # fmt: skip


@pytest.fixture
def serve(request: pytest.FixtureRequest, mode: str) -> Iterator[Starter]:
    """Start swserve; ``serve(app, *flags, workers=2, wait=True)`` returns a ready Server."""
    servers: list[Server] = []

    def start(
        app: str = "wsgi_echo:app",
        *extra: str,
        workers: int = 2,
        wait: bool = True,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Server:
        server = Server(
            swserve_args(app, *extra, workers=workers, mode=mode),
            cwd=cwd,
            env=env,
            pass_fds=pass_fds,
        )
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    failures = []
    for server in servers:
        code = server.stop()
        if server.expected_exit is not None and code != server.expected_exit:
            failures.append(
                f"swserve exited with {code}, expected {server.expected_exit}\n{server.logs()}"
            )
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture(scope="module")
def shared_server(request: pytest.FixtureRequest, mode: str) -> Iterator[Server]:
    """A module-wide server for read-only tests: the module sets SHARED_APP / SHARED_ARGS."""
    app = getattr(request.module, "SHARED_APP", "wsgi_echo:app")
    extra = getattr(request.module, "SHARED_ARGS", ())
    server = Server(swserve_args(app, *extra, mode=mode))
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
        if code != 0:
            pytest.fail(f"shared swserve exited with {code}\n{server.logs()}")
