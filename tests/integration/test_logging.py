"""Logging on the live server: --log-config, --log-file and its reopening on SIGRTMIN,
colour on a terminal only, and scanners' garbage at debug level."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader
from tests.integration.conftest import LISTENING, Server, Starter, swserve_args

LOG_CONFIG = {
    "version": 1,
    "formatters": {
        "marked": {"format": "MARK %(levelname)s [%(process)d] %(message)s"},
        "access": {"format": "ACCESS %(message)s"},
    },
    "handlers": {
        "err": {"class": "logging.StreamHandler", "formatter": "marked", "stream": "ext://sys.stderr"},
        "acc": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "swserve.error": {"handlers": ["err"], "level": "INFO", "propagate": False},
        "swserve.access": {"handlers": ["acc"], "level": "INFO", "propagate": False},
    },
}  # fmt: skip

LOG_CONFIG_TOML = """\
version = 1

[formatters.marked]
format = "MARK %(levelname)s [%(process)d] %(message)s"

[formatters.access]
format = "ACCESS %(message)s"

[handlers.err]
class = "logging.StreamHandler"
formatter = "marked"
stream = "ext://sys.stderr"

[handlers.acc]
class = "logging.StreamHandler"
formatter = "access"
stream = "ext://sys.stderr"

[loggers."swserve.error"]
handlers = ["err"]
level = "INFO"
propagate = false

[loggers."swserve.access"]
handlers = ["acc"]
level = "INFO"
propagate = false
"""


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a file with a deadline, not sleeping to synchronise


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def titles(server: Server) -> dict[str, int]:
    return {title: pid for pid, title in server.children().items()}


# -- --log-config ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "toml"])
def test_log_config_replaces_the_set_up_in_every_process(
    serve: Starter, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"logging.{kind}"
    path.write_text(json.dumps(LOG_CONFIG) if kind == "json" else LOG_CONFIG_TOML)
    server = serve("log_app:app", "--log-config", str(path), "--access-log", workers=1)
    master = server.pid
    server.wait_for(rf"^MARK INFO \[{master}\] Listening on http://")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        worker = int(client.get("/log").text)
    server.wait_for(rf"^MARK INFO \[{worker}\] app line from {worker}$")  # from the worker
    server.wait_for(r'^ACCESS 127\.0\.0\.1 - - \[.*\] "GET /log HTTP/1\.1" 200')  # from the master
    # swserve's own format is replaced, not added to
    assert not [line for line in server.stderr if line.startswith("[")], server.logs()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.json", None, "No such file or directory"),
        ("bad.json", '{"version": 1,', "not valid JSON"),
        ("bad.toml", "version = = 1", "not valid TOML"),
        ("list.json", "[1, 2]", "must hold a dictConfig object"),
        ("logging.yaml", "version: 1", "must be a .json or .toml file"),
        (
            "nohandler.json",
            '{"version": 1, "handlers": {"h": {"class": "no.Such"}}}',
            "handler 'h'",
        ),
        ("noversion.toml", "[loggers]", "version"),
    ],
)
def test_bad_log_config_is_one_line_and_exit_1_before_anything_starts(
    serve: Starter, tmp_path: Path, name: str, content: str | None, reason: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    server = serve("log_app:app", "--log-config", str(path), wait=False)
    server.expected_exit = 1
    assert server.wait_exit(30) == 1
    server.stop()  # joins the readers: every line is in
    assert len(server.stderr) == 1, server.logs()
    assert f"[ERROR] --log-config {path}: " in server.stderr[0]
    assert reason in server.stderr[0]


def test_bad_log_file_is_one_line_and_exit_1(serve: Starter, tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "swserve.log"
    server = serve("log_app:app", "--log-file", str(path), wait=False)
    server.expected_exit = 1
    assert server.wait_exit(30) == 1
    server.stop()  # joins the readers: every line is in
    assert len(server.stderr) == 1, server.logs()
    assert f"[ERROR] --log-file {path}: No such file or directory" in server.stderr[0]


# -- --log-file and SIGRTMIN -----------------------------------------------------------------


def wait_listening_in(log: Path) -> int:
    wait_until(lambda: LISTENING.search(read(log)), what="Listening on in the log file")
    match = LISTENING.search(read(log))
    assert match is not None
    return int(match.group(2))  # group 1 is the scheme


def rotate_and_wait_for_workers(server: Server, log: Path) -> Path:
    """mv log log.1, SIGRTMIN to the master; return once every worker writes the new file."""
    rotated = log.with_name(log.name + ".1")
    log.rename(rotated)
    server.send(signal.SIGRTMIN)
    wait_until(log.exists, what="the master to reopen the log file")
    workers = {pid for title, pid in titles(server).items() if title.startswith("swserve: worker")}
    assert len(workers) == 2
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # the manager passes the signal on: each worker soon writes to the new file
        def every_worker_reopened() -> bool:
            client.get("/log")
            return all(f"app line from {pid}" in read(log) for pid in workers)

        wait_until(every_worker_reopened, what="both workers to write the new file")
    return rotated


def test_log_file_takes_every_process_and_reopens_on_sigrtmin(
    serve: Starter, tmp_path: Path
) -> None:
    log = tmp_path / "swserve.log"
    server = serve("log_app:app", "--log-file", str(log), "--access-log", workers=2, wait=False)
    server.port = wait_listening_in(log)
    master, manager = server.pid, titles(server)["swserve: manager"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        worker = int(client.get("/log").text)
        assert client.get("/stderr").status_code == 200
        assert client.get("/print").status_code == 200
    wait_until(lambda: f"app line from {worker}" in read(log), what="the worker's line")
    text = read(log)
    assert f"] [{master}] [INFO] Listening on" in text
    assert f"] [{worker}] [INFO] app line from {worker}" in text
    assert '"GET /log HTTP/1.1" 200' in text  # the access log, written by the master
    assert "stderr line from" in text  # the app's own stderr goes to the file too...
    server.wait_for(r"^stdout line from \d+$", stream="stdout")  # ...its stdout does not
    assert server.stderr == [], server.logs()

    # rotation: move the file away, then SIGRTMIN to the master only
    rotated = rotate_and_wait_for_workers(server, log)
    server.send(signal.SIGHUP)  # the master and the manager each log a line about the reload
    wait_until(lambda: "reload finished" in read(log), what="the reload's lines")
    text = read(log)
    assert f"] [{master}] [INFO] SIGHUP: reloading the workers" in text
    assert f"] [{manager}] [INFO] reloading 2 worker(s)" in text
    assert '"GET /log HTTP/1.1" 200' in text
    assert "Listening on" not in text  # it is in the rotated file, which nobody writes now
    assert "Listening on" in read(rotated)
    assert "reload" not in read(rotated)
    assert server.stderr == [], server.logs()


def test_asgi_workers_reopen_the_log_file_too(serve: Starter, tmp_path: Path) -> None:
    log = tmp_path / "swserve.log"
    server = serve(
        "log_app:asgi_app", "--log-file", str(log), "--access-log", workers=2, wait=False
    )
    server.port = wait_listening_in(log)
    rotated = rotate_and_wait_for_workers(server, log)  # workers on uvloop get it as well
    assert '"GET /log HTTP/1.1" 200' in read(log)
    assert "Listening on" in read(rotated)
    assert server.stderr == [], server.logs()


# -- colour ----------------------------------------------------------------------------------


def _start_on_pty(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, **env},
        start_new_session=True,
    )
    os.close(follower)
    return proc, leader


def _read_until(fd: int, pattern: bytes, timeout: float = 30.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, out):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} on the terminal: {out!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # EIO: every process closed the terminal
                raise AssertionError(f"no {pattern!r} on the terminal: {out!r}") from None
    return out


@pytest.mark.parametrize(
    ("env", "coloured"),
    [({"NO_COLOR": "", "FORCE_COLOR": ""}, True), ({"NO_COLOR": "1"}, False)],
)
def test_colour_on_a_terminal_unless_no_color(env: dict[str, str], coloured: bool) -> None:
    env = {"TERM": "xterm", "FORCE_COLOR": "", **env}
    proc, leader = _start_on_pty(swserve_args("log_app:app", workers=1), env)
    try:
        out = _read_until(leader, rb"Listening on http://\S+")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        os.close(leader)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
    if coloured:
        # the level is coloured and padded, so that messages line up
        assert b"\x1b[32mINFO    \x1b[0m Listening on http://" in out, out
    else:
        assert b"\x1b[" not in out, out
        assert b"[INFO] Listening on http://" in out, out


def test_no_colour_into_a_pipe_unless_forced(serve: Starter) -> None:
    plain = serve(
        "log_app:app", workers=1, env={"TERM": "xterm", "NO_COLOR": "", "FORCE_COLOR": ""}
    )
    assert not [line for line in plain.stderr if "\x1b" in line], plain.logs()
    assert re.search(r"\[INFO\] Listening on", "\n".join(plain.stderr))
    forced = serve("log_app:app", workers=1, env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    forced.wait_for(r"\x1b\[32mINFO    \x1b\[0m Listening on")


# -- scanners --------------------------------------------------------------------------------

GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello on plain HTTP
    b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
]


def _send_garbage(port: int, payload: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        return ResponseReader(sock).read().status


@pytest.mark.parametrize("payload", GARBAGE, ids=["tls-client-hello", "header-without-colon"])
def test_garbage_from_a_client_is_logged_at_debug_only(serve: Starter, payload: bytes) -> None:
    info = serve("log_app:app", "--log-level", "info", "--access-log", workers=1)
    assert _send_garbage(info.port, payload) == 400
    # a later line from the same process marks the point where a garbage line would be
    with httpx.Client(base_url=info.url, timeout=10) as client:
        assert client.get("/after").status_code == 200
    info.wait_for(r'"GET /after HTTP/1\.1" 200')
    assert not [line for line in info.stderr if "bad request" in line], info.logs()

    debug = serve("log_app:app", "--log-level", "debug", workers=1)
    assert _send_garbage(debug.port, payload) == 400
    debug.wait_for(
        rf"\] \[{debug.pid}\] \[DEBUG\] bad request from 127\.0\.0\.1:\d+: .+ \(answering 400\)$"
    )
    assert not [line for line in debug.stderr if "[WARNING]" in line or "[ERROR]" in line]
