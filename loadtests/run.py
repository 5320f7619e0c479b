#!/usr/bin/env python3
"""Benchmark swserve against uvicorn, gunicorn and granian on the same apps, with wrk.

Responsibilities:
  * keep a separate virtualenv (``loadtests/.venv-anchors/``) with the anchor servers and an
    editable install of swserve, so nothing here depends on the developer's own environment;
  * start each server on 127.0.0.1 in its own session, wait for a real HTTP answer (never a fixed
    sleep), drive it with wrk, and stop the whole process group afterwards (TERM, then KILL);
  * measure the CPU time of the server's whole process tree (from /proc) so that each point
    carries CPU µs per request beside requests per second;
  * write every raw point as JSON, and a markdown summary, into ``loadtests/results/``.

It must not talk to anything but 127.0.0.1, run without a time bound, or leave a server behind:
every server is stopped in a ``finally``, also on Ctrl-C, SIGTERM and errors.

Only the standard library is used, so any Python 3.11 can run ``python3 loadtests/run.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import math
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any, Final, Self

HERE: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = HERE.parent
VENV_DIR: Final = HERE / ".venv-anchors"
VENV_BIN: Final = VENV_DIR / "bin"
INSTALL_STAMP: Final = VENV_DIR / ".anchors-installed"
RESULTS_DIR: Final = HERE / "results"
HOST: Final = "127.0.0.1"

# matplotlib draws the chart (chart.py runs under this venv's python: run.py stays stdlib-only)
ANCHOR_REQUIREMENTS: Final = (
    *("uvicorn[standard]", "gunicorn", "granian", "flask", "fastapi"),
    "matplotlib",
)
REPORTED_PACKAGES: Final = (
    *("swserve", "uvicorn", "gunicorn", "granian"),
    *("flask", "fastapi", "httptools", "uvloop"),
)

# Every wait is bounded. The values are generous for a loaded 2-core machine.
VENV_CREATE_TIMEOUT_S: Final = 120
PIP_TIMEOUT_S: Final = 900
READY_TIMEOUT_S: Final = 30.0
PROBE_TIMEOUT_S: Final = 2.0
POLL_INTERVAL_S: Final = 0.05
STOP_GRACE_S: Final = 10.0
WRK_SLACK_S: Final = 30  # on top of the wrk duration, for wrk's own start-up and teardown
LOG_TAIL_LINES: Final = 30

# click's and argparse's usage errors: the CLI does not know an option (yet).
CLI_REJECTED_RE: Final = re.compile(
    r"no such option|invalid value|unrecognized arguments|usage:", re.IGNORECASE
)

# ---------------------------------------------------------------------------------------------
# Servers: the one table of how to launch each server under test.
# ---------------------------------------------------------------------------------------------

WSGI: Final = frozenset({"wsgi"})
ASGI: Final = frozenset({"asgi"})
BOTH: Final = WSGI | ASGI


@dataclass(frozen=True)
class Server:
    """How to launch one server.

    ``command`` is a template over {app}, {interface}, {host}, {port}, {workers} and {extra};
    its first word is an executable in the anchors venv. {extra} is ``asgi_extra`` for ASGI apps,
    followed by the scenario's own options for this server (``Scenario.server_args``, the
    ``max_requests`` options of a churn run). Servers with a ``port_line`` are given port 0 and
    the port is read from their log, which avoids the free-port race; the others get a port the
    harness picked.

    The ``reload`` scenario uses the servers with ``reloads_on_hup``; the log regexes, matched
    over the server's whole log, count what they did.
    """

    name: str
    interfaces: frozenset[str]
    command: str
    asgi_extra: str = ""
    port_line: str = ""  # regex for the log line giving the port it bound; "" = can't report
    skip_if_rejected: bool = False  # a CLI usage error means "not supported yet": skip the point
    subject: bool = False  # the server being benchmarked; ratios are computed against the others
    reloads_on_hup: bool = False  # SIGHUP to the process we launched replaces the workers
    max_requests: str = ""  # options recycling a worker after {n} (+ up to {jitter}) requests
    hup_ack_line: str = ""  # regex of the log line that shows a SIGHUP was acted on
    worker_start_line: str = ""  # regex of the log line of every worker (re)start
    # regex of a line with the server's own running totals of worker replacements: the numbers
    # in group 1 of its last match are summed
    replacements_line: str = ""
    # idle-connections: regex over /proc/<pid>/cmdline of the processes that hold the client
    # connections ("master + reactors"); "" = the whole process tree
    front_processes: str = ""

    def argv(
        self, app: str, interface: str, port: int, workers: int, extra_args: str = ""
    ) -> list[str]:
        extra = " ".join(filter(None, (self.asgi_extra if interface == "asgi" else "", extra_args)))
        return shlex.split(
            self.command.format(
                app=app, interface=interface, host=HOST, port=port, workers=workers, extra=extra
            )
        )


# {extra} comes last in every command, so that a scenario's options override the defaults
# (gunicorn's and granian's CLIs take the last value of a repeated option).
SWSERVE: Final = "swserve {app} --bind {host}:{port} --workers {workers}"
SWSERVE_PORT: Final = r"Listening on http://127\.0\.0\.1:(\d+)"
SWSERVE_RELOAD: Final[dict[str, Any]] = {
    "reloads_on_hup": True,
    # --max-requests-jitter defaults to half of --max-requests: the 0..100 the others get.
    "max_requests": "--max-requests {n}",
    "hup_ack_line": r"SIGHUP: reloading the workers",
    # "reload finished; ..." and, at a clean shutdown, "stopped; ...", end in "recycled: none,
    # worker exits: K" or "recycled: max-requests N, reload M, worker exits: K" (the exits also
    # count the workers stopped at shutdown, so they are not used)
    "replacements_line": r"recycled: (.*?), worker exits",
}
# Info level only adds start-up and worker (re)start lines (access logs stay off) and gives
# the bound port.
GUNICORN: Final = (
    "gunicorn {app} --bind {host}:{port} --workers {workers} --log-level info --no-control-socket"
)
GUNICORN_PORT: Final = r"Listening at: http://127\.0\.0\.1:(\d+)"
GUNICORN_RELOAD: Final[dict[str, Any]] = {
    "reloads_on_hup": True,
    "max_requests": "--max-requests {n} --max-requests-jitter {jitter}",
    "hup_ack_line": r"Handling signal: hup",
    "worker_start_line": r"Booting worker with pid",
}
SERVERS: Final[tuple[Server, ...]] = (
    Server(
        "swserve",
        BOTH,
        SWSERVE + " {extra}",
        port_line=SWSERVE_PORT,
        subject=True,
        **SWSERVE_RELOAD,
        # process mode: the master runs the reactor and owns every connection
        front_processes=r"^swserve: (master|reactor)",
    ),
    Server(
        "swserve-base",
        BOTH,
        SWSERVE + " --mode base {extra}",
        port_line=SWSERVE_PORT,
        skip_if_rejected=True,
        subject=True,
        **SWSERVE_RELOAD,
        # base mode: every worker is a reactor and owns its connections (the app is in it too)
        front_processes=r"^swserve: (master|reactor|worker)",
    ),
    # uvicorn's WSGI adapter is deprecated and not how anyone deploys WSGI: ASGI only. With
    # --workers > 1 its multiprocess supervisor restarts the workers on SIGHUP, one by one.
    Server(
        "uvicorn",
        ASGI,
        "uvicorn {app} --host {host} --port {port} --workers {workers} --interface asgi3"
        " --http httptools --loop uvloop --no-access-log --log-level info {extra}",
        port_line=r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
        reloads_on_hup=True,
        max_requests="--limit-max-requests {n} --limit-max-requests-jitter {jitter}",
        hup_ack_line=r"Received SIGHUP, restarting processes",
        worker_start_line=r"Started server process",
    ),
    Server(
        "gunicorn-sync",
        WSGI,
        GUNICORN + " --worker-class sync {extra}",
        port_line=GUNICORN_PORT,
        **GUNICORN_RELOAD,
    ),
    Server(
        "gunicorn-gthread",
        WSGI,
        GUNICORN + " --worker-class gthread --threads 4 {extra}",
        port_line=GUNICORN_PORT,
        **GUNICORN_RELOAD,
    ),
    Server(
        "granian",
        BOTH,
        "granian --interface {interface} --host {host} --port {port} --workers {workers}"
        " --http 1 --no-access-log --log-level warning {extra} {app}",
        asgi_extra="--no-ws --loop uvloop",
        # port_line: none; given port 0, granian logs "Listening at: http://127.0.0.1:0".
        # SIGHUP respawns the workers; granian has no request-count limit (only
        # --workers-lifetime, at least 60 s, and --workers-max-rss), so churn is HUP only.
        reloads_on_hup=True,
        hup_ack_line=r"HUP signal received",
        worker_start_line=r"Spawning worker-\d+ with PID",
    ),
)
SERVERS_BY_NAME: Final = {server.name: server for server in SERVERS}

# ---------------------------------------------------------------------------------------------
# Scenarios: the one table of what is measured.
# ---------------------------------------------------------------------------------------------

POST_1MIB_LUA: Final = """\
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""

# One request in ten goes to /slow (50 ms), the rest to /fast (1 ms).
MIXED_LUA: Final = """\
local counter = 0
request = function()
  counter = counter + 1
  if counter % 10 == 0 then
    return wrk.format("GET", "/slow")
  end
  return wrk.format("GET", "/fast")
end
"""


WRK: Final = "wrk"  # one wrk run per point
RELOAD: Final = "reload"  # wrk while the workers are recycled and reloaded (SIGHUP), vs. without
OPENLOOP: Final = "openloop"  # openloop.py: Poisson arrivals at fixed rates, latency per kind
SLOWLORIS: Final = "slowloris"  # wrk with and without slowloris.py's connections held open
IDLE: Final = "idle"  # wrk and RSS with and without idle.py's keep-alive connections held open
STARTUP: Final = "startup"  # launch until the first 200, one launch per point
IDLE_CONNECTIONS: Final = 10_000  # idle-connections: the keep-alive connections held open
IDLE_ROOM: Final = IDLE_CONNECTIONS + 1000  # the connection limit given to servers that have one


@dataclass(frozen=True)
class Scenario:
    """What one scenario measures and how.

    ``duration_s``, ``repeat``, ``connections`` and ``workers``, when set, replace the suite's
    defaults for this scenario; the command-line options replace both. ``default_servers``, when
    set, are the servers it runs unless ``--servers`` is given.
    """

    name: str
    interface: str
    app: str
    suites: frozenset[str]
    summary: str
    path: str = "/"
    probe_path: str = "/"  # GET target for the readiness check
    lua: str = ""  # wrk script, written to a temp file when set
    kind: str = WRK
    asgi_app: str = ""  # the same test for servers that serve ASGI only (uvicorn)
    server_args: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    duration_s: int | None = None
    repeat: int | None = None
    connections: int | None = None
    workers: int | None = None
    default_servers: tuple[str, ...] = ()

    def app_for(self, server: Server) -> tuple[str, str] | None:
        """The (app, interface) ``server`` runs in this scenario, or None if it can't."""
        if self.kind == RELOAD and not server.reloads_on_hup:
            return None
        if self.interface in server.interfaces:
            return self.app, self.interface
        if self.asgi_app and "asgi" in server.interfaces:
            return self.asgi_app, "asgi"
        return None


QUICK: Final = frozenset({"quick", "full"})  # quick scenarios are part of full too
FULL: Final = frozenset({"full"})
APPS: Final = "loadtests.apps."
SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario(
        "wsgi-hello", "wsgi", APPS + "hello_wsgi:app", QUICK, "13-byte body: fixed cost, WSGI"
    ),
    Scenario(
        "asgi-hello", "asgi", APPS + "hello_asgi:app", QUICK, "13-byte body: fixed cost, ASGI"
    ),
    Scenario(
        "flask-json", "wsgi", APPS + "flask_json:app", FULL, "Flask jsonify: a real framework"
    ),
    Scenario(
        "fastapi-json", "asgi", APPS + "fastapi_json:app", FULL, "FastAPI JSON: a real framework"
    ),
    Scenario("wsgi-64k", "wsgi", APPS + "big:app", FULL, "64 KiB response body, WSGI"),
    Scenario("asgi-64k", "asgi", APPS + "big:asgi_app", FULL, "64 KiB response body, ASGI"),
    Scenario(
        "wsgi-echo-1m",
        "wsgi",
        APPS + "big:app",
        FULL,
        "1 MiB POST echoed back, WSGI",
        path="/echo",
        lua=POST_1MIB_LUA,
    ),
    Scenario(
        "asgi-echo-1m",
        "asgi",
        APPS + "big:asgi_app",
        FULL,
        "1 MiB POST echoed back, ASGI",
        path="/echo",
        lua=POST_1MIB_LUA,
    ),
    Scenario(
        "wsgi-mixed",
        "wsgi",
        APPS + "mixed:app",
        frozenset(),
        "90% 1 ms, 10% 50 ms handlers: head-of-line blocking",
        probe_path="/fast",
        lua=MIXED_LUA,
    ),
    Scenario(
        "reload",
        "wsgi",
        APPS + "hello_wsgi:app",
        frozenset({"reload"}),
        "wsgi-hello, 2 workers: baseline vs SIGHUP every 2 s + max-requests 200",
        kind=RELOAD,
        asgi_app=APPS + "hello_asgi:app",
        # granian logs its worker respawns and the HUP only at info level (last option wins)
        server_args={"granian": "--log-level info"},
        duration_s=20,
        repeat=1,
        workers=2,
    ),
    Scenario(
        "mixed",
        "wsgi",
        APPS + "mixed:app",
        FULL,
        "open loop, Poisson 170 and 270 req/s, 10% 50 ms: fast p99 vs an ideal dispatcher",
        probe_path="/fast",
        kind=OPENLOOP,
        # The same execution slots everywhere: 2 workers x 1 thread.
        server_args={
            "swserve": "--threads 1",
            "swserve-base": "--threads 1",
            "gunicorn-gthread": "--threads 1",  # after --threads 4: the last one wins
            "granian": "--blocking-threads 1",
        },
        duration_s=20,
        repeat=1,
        connections=32,
        workers=2,
    ),
    Scenario(
        "slowloris",
        "wsgi",
        APPS + "hello_wsgi:app",
        frozenset(),
        "hello, wrk c=32: clean vs 500 slowloris connections held open",
        kind=SLOWLORIS,
        asgi_app=APPS + "hello_asgi:app",
        duration_s=10,
        repeat=1,
        connections=32,
        default_servers=("swserve", "gunicorn-sync", "gunicorn-gthread", "uvicorn"),
    ),
    Scenario(
        "idle-connections",
        "wsgi",
        APPS + "hello_wsgi:app",
        FULL,
        f"hello, wrk c=64: RSS and req/s with and without {IDLE_CONNECTIONS:,} idle connections",
        kind=IDLE,
        asgi_app=APPS + "hello_asgi:app",
        # Room for the idle connections: they must outlive the run (every default keep-alive
        # timeout is a few seconds), and wrk's 64 must still get in beside them (swserve's
        # --max-connections defaults to exactly 10,000; gthread's --worker-connections to 1,000).
        server_args={
            "swserve": f"--keep-alive 300 --max-connections {IDLE_ROOM}",
            "swserve-base": f"--keep-alive 300 --max-connections {IDLE_ROOM}",
            "uvicorn": "--timeout-keep-alive 300",
            "gunicorn-gthread": f"--keep-alive 300 --worker-connections {IDLE_ROOM}",
            # granian has no keep-alive timeout option; its header-read timeout (30 s default,
            # 60 s at most) closes idle keep-alive connections. --backpressure (default: backlog
            # / workers = 1024) caps the connections a worker serves, idle ones included.
            "granian": f"--http1-header-read-timeout 60000 --backpressure {IDLE_ROOM}",
        },
        duration_s=10,
        repeat=2,
        # gunicorn's sync worker has no keep-alive: it closes every connection after answering
        default_servers=("swserve", "swserve-base", "uvicorn", "gunicorn-gthread", "granian"),
    ),
    Scenario(
        "startup",
        "wsgi",
        APPS + "hello_wsgi:app",
        FULL,
        "process start to the first 200 on the hello app, median of the launches",
        kind=STARTUP,
        asgi_app=APPS + "hello_asgi:app",
        repeat=5,
    ),
)
SCENARIOS_BY_NAME: Final = {scenario.name: scenario for scenario in SCENARIOS}


@dataclass(frozen=True)
class Suite:
    duration_s: int
    repeat: int
    connections: int = 64


SUITES: Final = {
    "quick": Suite(duration_s=5, repeat=2),
    "full": Suite(duration_s=8, repeat=3),
    "reload": Suite(duration_s=20, repeat=1),
}
# reload: a churn point sends SIGHUP this often, and the servers recycle after this many requests
HUP_INTERVAL_S: Final = 2.0
MAX_REQUESTS: Final = 200
BASELINE: Final = "baseline"
RECYCLE: Final = "recycle"  # max-requests only: issue #3's "the same run without reloads"
CHURN: Final = "churn"
# mixed: the open-loop rates, and the seed of the arrival times and the fast/slow sequence
OPENLOOP_RATES: Final = (170.0, 270.0)
OPENLOOP_SEED: Final = 1
OPENLOOP_WARMUP_RATE: Final = 100.0
OPENLOOP_TIMEOUT_S: Final = 10.0  # per request
OPENLOOP_SCRIPT: Final = HERE / "openloop.py"
# slowloris: the connections slowloris.py holds open during the second point of each pair
CLEAN: Final = "clean"
HELD: Final = "slowloris"
SLOWLORIS_CONNECTIONS: Final = 500
SLOWLORIS_SCRIPT: Final = HERE / "slowloris.py"
SLOWLORIS_RAMP_TIMEOUT_S: Final = 15.0  # until every connection is open, at most
# Between the end of the ramp and the measured run (the warm-up runs in it): the servers accept
# and start timing the connections, so that with the default 10 s a 10 s head timeout such as
# swserve's fires, and the client reconnects, inside the measured run.
SLOWLORIS_SOAK_S: Final = 2.0
SLOWLORIS_MIN_RATIO: Final = 0.95  # the issue: swserve loses < 5 % of its throughput
FD_TROUBLE_RE: Final = re.compile(r"Too many open files|EMFILE|ENFILE", re.I)
# idle-connections: the pair of points, and idle.py
WITHOUT: Final = "without"
WITH: Final = "with"
IDLE_SCRIPT: Final = HERE / "idle.py"
IDLE_RAMP_TIMEOUT_S: Final = 60.0  # until every connection has had its first exchange, at most
IDLE_RSS_BASE_KIB: Final = 40 * 1024  # the issue: master + reactors <= 40 MiB + 8 KiB per conn
IDLE_RSS_PER_CONN_KIB: Final = 8
IDLE_MIN_RATIO: Final = 0.90  # the issue: throughput with them >= 0.9x without
# startup: how often the harness looks for the port line and tries the GET
STARTUP_POLL_S: Final = 0.005
STARTUP_MAX_S: Final = 0.3  # the issue: process start to the first 200

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    rps: float
    latency_ms: dict[str, float]  # "p50", "p75", "p90", "p99"
    non_2xx_3xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout


@dataclass
class Point:
    """One run of one server on one scenario: everything written to the JSON file."""

    scenario: str
    server: str
    repeat: int
    variant: str = ""  # reload: "baseline" or "churn"; mixed: the rate, "170/s"
    status: str = "ok"  # "ok", "failed" or "skipped"
    reason: str = ""
    app: str = ""
    argv: list[str] = field(default_factory=list)
    pinning: str = ""
    connections: int = 0
    duration_s: int = 0
    workers: int = 0
    port: int | None = None
    startup_s: float | None = None  # launch until the first successful GET
    rps: float | None = None
    requests: int | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    non_2xx_3xx: int | None = None
    socket_errors: dict[str, int] = field(default_factory=dict)
    errors: int | None = None  # non-2xx/3xx responses + socket errors
    cpu_s: float | None = None  # user+sys of the server's process tree during the wrk run
    cpu_us_per_req: float | None = None
    user_us_per_req: float | None = None  # its user-space share (the rest is the kernel's)
    server_cores_used: float | None = None  # cpu_s / wall seconds of the wrk run
    tree_processes: int | None = None
    loadavg_1m: float | None = None  # machine load just before the run, to spot noisy neighbours
    exit_code: int | None = None
    stopped_with: str = ""  # "SIGTERM", "SIGKILL", or "" if it had exited by itself
    # reload: the SIGHUPs sent during the measured run, to whom, and what the log says happened
    hups_sent: int | None = None
    hup_offsets_s: list[float] = field(default_factory=list)  # after the start of the run
    hup_target: str = ""  # pid and command line of the process that got them
    hups_acknowledged: int | None = None  # log lines saying a SIGHUP was acted on
    worker_starts: int | None = None  # log lines of worker (re)starts, whole server life
    worker_replacements: int | None = None  # the server's own count (swserve), whole life
    # mixed: openloop.py's JSON (the run's percentiles per kind, errors, the ideal's figures)
    openloop: dict[str, Any] = field(default_factory=dict)
    # slowloris: slowloris.py's JSON plus "window", its figures within the measured run
    slowloris: dict[str, Any] = field(default_factory=dict)
    server_fd_limit: int | None = None  # lowest soft RLIMIT_NOFILE in the server's tree
    server_fds_max: int | None = None  # most fds open in one server process, after the run
    server_fd_trouble: list[str] = field(default_factory=list)  # EMFILE & co. in its log
    # idle-connections: memory of the server after the measured run (KiB): the processes that
    # hold the connections (Server.front_processes; the whole tree if it has none), the whole
    # tree's RSS (shared pages counted in each process) and PSS (shared pages split), and the
    # same before the run; idle.py's JSON plus "window", its figures within the measured run
    rss_front_kib: int | None = None
    rss_tree_kib: int | None = None
    pss_tree_kib: int | None = None
    memory_before_run: dict[str, int | None] = field(default_factory=dict)
    front_processes: list[str] = field(default_factory=list)
    idle: dict[str, Any] = field(default_factory=dict)
    # warnings, errors, tracebacks logged until the end of the measured run (all of them if the
    # run did not end normally), and those logged while the harness stopped the server
    server_log_problems: list[str] = field(default_factory=list)
    server_log_problems_at_stop: list[str] = field(default_factory=list)
    server_log_tail: str = ""
    wrk_output: str = ""


class PointError(Exception):
    """A point could not be measured; ``status`` is "failed" or "skipped"."""

    def __init__(self, reason: str, *, status: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class StopRequestedError(Exception):
    """SIGTERM or SIGHUP reached the harness: stop measuring, clean up, write what we have."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# The anchors venv
# ---------------------------------------------------------------------------------------------


def pip_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
        cwd=REPO_ROOT,
    )


def compile_checkout() -> None:
    """Byte-compile swserve and the benchmark apps, as pip compiles the anchors it installs.

    swserve runs from this checkout (an editable install).  Without ``.pyc`` files, with
    PYTHONDONTWRITEBYTECODE set or a read-only tree, every launch compiles ~10,000 lines of
    source again: ~95 ms of the start-up scenario, a cost no user installing a wheel pays.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "swserve"), str(HERE / "apps")],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def ensure_venv(*, no_install: bool, with_swserve: bool) -> str:
    """Create the anchors venv once, install the anchors once, and swserve (editable) each run.

    With ``no_install`` an existing venv is used as it is; without ``with_swserve`` (no swserve
    variant selected) swserve is not reinstalled.

    Returns:
        "" when the venv has a ``swserve`` command, else why not, so that swserve points are
        recorded as failed while the anchors still run.

    Raises:
        SystemExit: the venv or the anchors could not be installed.
    """
    swserve = VENV_BIN / "swserve"
    if not (VENV_BIN / "python").exists():
        log(f"creating {VENV_DIR} ...")
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV_DIR)],
            check=True,
            timeout=VENV_CREATE_TIMEOUT_S,
        )
    elif no_install:
        return "" if swserve.exists() else f"{swserve} not found (and --no-install was given)"
    wanted = "\n".join(ANCHOR_REQUIREMENTS)
    if not INSTALL_STAMP.exists() or INSTALL_STAMP.read_text() != wanted:
        log(f"installing {', '.join(ANCHOR_REQUIREMENTS)} into {VENV_DIR} ...")
        result = pip_install(*ANCHOR_REQUIREMENTS)
        if result.returncode != 0:
            raise SystemExit(f"pip could not install the anchors:\n{tail(result.stderr)}")
        INSTALL_STAMP.write_text(wanted)
    if not with_swserve:
        return ""
    log(f"installing swserve from {REPO_ROOT} (editable) ...")
    result = pip_install("-e", str(REPO_ROOT))
    if result.returncode == 0:
        return ""
    failure = f"pip install -e {REPO_ROOT} failed:\n{tail(result.stderr or result.stdout, 12)}"
    if swserve.exists():  # an earlier editable install still runs the current source tree
        log(f"warning: {failure}\nusing the swserve already installed in {VENV_DIR}")
        return ""
    log(failure)
    return failure


def installed_versions() -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def version(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({name: version(name) for name in sys.argv[1:]}))\n"
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code, *REPORTED_PACKAGES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str | None] = json.loads(result.stdout)
    return versions


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    env["PYTHONPATH"] = str(REPO_ROOT)  # every server imports loadtests.apps.* from the repo
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # the "Listening on" line must reach the log file at once
    return env


# ---------------------------------------------------------------------------------------------
# /proc: CPU accounting and process groups
# ---------------------------------------------------------------------------------------------

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    ppid: int
    pgrp: int
    zombie: bool
    cpu_ticks: int  # utime + stime + cutime + cstime
    user_ticks: int = 0  # utime + cutime: the user-space share (the interpreter, not the kernel)


def read_stats() -> dict[int, ProcStat]:
    """Parse /proc/*/stat for every process (see proc(5) for the field numbers)."""
    stats: dict[int, ProcStat] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path(entry.path, "stat").read_text()
        except OSError:  # exited while we were walking /proc
            continue
        # Field 2, the command name, may contain spaces and ")": split after the last ")".
        fields = data[data.rindex(")") + 2 :].split()
        stats[int(entry.name)] = ProcStat(
            ppid=int(fields[1]),  # field 4
            pgrp=int(fields[2]),  # field 5
            zombie=fields[0] == "Z",  # field 3
            cpu_ticks=sum(int(value) for value in fields[11:15]),  # fields 14-17
            user_ticks=int(fields[11]) + int(fields[13]),  # fields 14 and 16
        )
    return stats


def tree_cpu(root: int) -> tuple[float, int]:
    total, _, count = tree_ticks(root)
    return total, count


def tree_ticks(root: int) -> tuple[float, float, int]:
    """CPU seconds used so far by ``root`` and all its descendants (all, and user-space only),
    and how many are alive.

    Children that exited and were reaped are in their parent's cutime/cstime, so workers replaced
    during a run are still counted.
    """
    stats = read_stats()
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, stat in stats.items():
        children[stat.ppid].append(pid)
    ticks = user = 0
    seen: set[int] = set()
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        ticks += stats[pid].cpu_ticks
        user += stats[pid].user_ticks
        stack.extend(children[pid])
    return ticks / CLOCK_TICKS, user / CLOCK_TICKS, len(seen)


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group ``pgid``."""
    return any(s.pgrp == pgid and not s.zombie for s in read_stats().values())


def stop_group(proc: subprocess.Popen[Any], grace: float = STOP_GRACE_S) -> str:
    """Stop a process started with ``start_new_session=True`` and everything in its group.

    SIGTERM to the group; wait up to ``grace`` for the leader and the rest of the group to exit;
    then SIGKILL the group.

    Returns:
        "SIGTERM" or "SIGKILL" (whichever ended it), or "" if the group had already exited.
    """
    with signals_blocked():  # a second Ctrl-C must not cut the clean-up short
        return _stop_group(proc, grace)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back (they are delivered on exit) in a bounded section."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_group(proc: subprocess.Popen[Any], grace: float) -> str:
    pgid = proc.pid  # a session leader's pid is its process group id
    if proc.poll() is not None and not group_alive(pgid):
        return ""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    if proc.poll() is None or group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        return "SIGKILL"
    return "SIGTERM"


@contextlib.contextmanager
def session(argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    """Run ``argv`` in a new session; stop its whole process group on exit, whatever happens.

    Raises:
        PointError: ``argv`` could not be started.
    """
    try:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    except OSError as exc:
        raise PointError(f"cannot start {argv[0]}: {exc}") from exc
    try:
        yield proc
    finally:
        stop_group(proc)


def _raise_stop_requested(signum: int, frame: FrameType | None) -> None:
    raise StopRequestedError(signal.Signals(signum).name)


# ---------------------------------------------------------------------------------------------
# CPU pinning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server_cpus: tuple[int, ...] = ()
    load_cpus: tuple[int, ...] = ()

    @classmethod
    def choose(cls, *, enabled: bool) -> Pinning:
        """On small machines (2-4 CPUs) give wrk the first CPU and the server the others.

        Otherwise wrk and the server fight for the same cores and each point measures the
        scheduler as much as the server. Larger machines have room, so nothing is pinned there.
        """
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        if not enabled or not 2 <= len(cpus) <= 4 or shutil.which("taskset") is None:
            return cls()
        return cls(server_cpus=cpus[1:], load_cpus=cpus[:1])

    def describe(self) -> str:
        if not self.server_cpus:
            return "none"
        return f"server=cpu{_cpus(self.server_cpus)} wrk=cpu{_cpus(self.load_cpus)}"

    def server_prefix(self) -> list[str]:
        return ["taskset", "-c", _cpus(self.server_cpus)] if self.server_cpus else []

    def load_prefix(self) -> list[str]:
        return ["taskset", "-c", _cpus(self.load_cpus)] if self.load_cpus else []


def _cpus(cpus: tuple[int, ...]) -> str:
    return ",".join(map(str, cpus))


# ---------------------------------------------------------------------------------------------
# Readiness and wrk
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """Bind port 0 and release it: racy by nature, so used only for anchors that can't report."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_ready(
    proc: subprocess.Popen[Any],
    log_path: Path,
    port: int,
    port_line: str,
    probe_path: str,
    timeout: float,
    poll_s: float = POLL_INTERVAL_S,
) -> int:
    """Wait until the server answers a real GET with 2xx/3xx, and return its port.

    With ``port == 0`` the port is first read from the log line matching ``port_line``.

    Raises:
        PointError: the server exited, answered with an error status, or the deadline passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PointError(f"server exited with code {proc.returncode} before it was ready")
        if port == 0 and (match := re.search(port_line, log_path.read_text(errors="replace"))):
            port = int(match.group(1))
        if port != 0 and (status := http_status(port, probe_path)) is not None:
            if not 200 <= status < 400:
                raise PointError(f"readiness probe GET {probe_path} answered HTTP {status}")
            return port
        time.sleep(poll_s)
    what = "print its port" if port == 0 else f"answer GET {probe_path} on port {port}"
    raise PointError(f"server did not {what} within {timeout:g} s")


WRK_UNITS_MS: Final = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
WRK_LATENCY_RE: Final = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
WRK_REQUESTS_RE: Final = re.compile(r"^\s*(\d+) requests in ", re.M)
WRK_RPS_RE: Final = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
WRK_SOCKET_RE: Final = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
WRK_NON_2XX_RE: Final = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(output: str) -> WrkResult:
    rps, requests = WRK_RPS_RE.search(output), WRK_REQUESTS_RE.search(output)
    if rps is None or requests is None:
        raise PointError(f"could not parse wrk's output: {tail(output, 5)}")
    sockets = WRK_SOCKET_RE.search(output)
    non_2xx = WRK_NON_2XX_RE.search(output)
    socket_counts = [int(n) for n in sockets.groups()] if sockets else [0, 0, 0, 0]
    return WrkResult(
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        latency_ms={
            f"p{pct}": round(float(value) * WRK_UNITS_MS[unit], 4)
            for pct, value, unit in WRK_LATENCY_RE.findall(output)
        },
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(
            zip(("connect", "read", "write", "timeout"), socket_counts, strict=True)
        ),
    )


def run_wrk(
    url: str, *, duration_s: int, connections: int, script: Path | None, pinning: Pinning
) -> tuple[WrkResult, str]:
    """Run ``wrk -t1 -cC -dDs --latency`` against ``url``; return the parsed and raw output."""
    argv = [*pinning.load_prefix(), "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s"]
    argv += ["--latency", *(["-s", str(script)] if script else []), url]
    with session(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            output, _ = proc.communicate(timeout=duration_s + WRK_SLACK_S)
        except subprocess.TimeoutExpired as exc:
            raise PointError(f"wrk did not finish within {duration_s + WRK_SLACK_S} s") from exc
    if proc.returncode != 0:
        raise PointError(f"wrk exited with code {proc.returncode}: {tail(output, 5)}")
    return parse_wrk(output), output


# ---------------------------------------------------------------------------------------------
# One measurement point
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The run's settings; ``None`` means "the scenario's default, else the suite's"."""

    suite: Suite
    duration_s: int | None
    connections: int | None
    workers: int | None
    warmup_s: int
    ready_timeout_s: float
    pinning: Pinning
    workdir: Path
    swserve_missing: str  # why the venv has no swserve command, or ""
    rates: tuple[float, ...] = OPENLOOP_RATES
    seed: int = OPENLOOP_SEED
    hup_interval_s: float = HUP_INTERVAL_S
    max_requests: int = MAX_REQUESTS

    def duration_for(self, scenario: Scenario) -> int:
        return self.duration_s or scenario.duration_s or self.suite.duration_s

    def connections_for(self, scenario: Scenario) -> int:
        return self.connections or scenario.connections or self.suite.connections

    def workers_for(self, scenario: Scenario) -> int:
        return self.workers or scenario.workers or 1

    def variants(self, scenario: Scenario) -> list[str]:
        """The points each (server, repeat) gets in ``scenario``."""
        if scenario.kind == RELOAD:
            return [BASELINE, RECYCLE, CHURN]
        if scenario.kind == OPENLOOP:
            return [rate_variant(rate) for rate in self.rates]
        if scenario.kind == SLOWLORIS:
            return [CLEAN, HELD]
        if scenario.kind == IDLE:
            return [WITHOUT, WITH]
        return [""]


def rate_variant(rate: float) -> str:
    return f"{rate:g}/s"


def variant_rate(variant: str) -> float:
    return float(variant.removesuffix("/s"))


@contextlib.contextmanager
def served(
    server: Server, scenario: Scenario, settings: Settings, point: Point, extra_args: str = ""
) -> Iterator[subprocess.Popen[Any]]:
    """Start ``server`` on ``scenario``'s app, wait until it answers, and stop it afterwards.

    Fills in ``point``'s app, argv, port and start-up time, and once the server's process group
    is stopped (whatever happened inside the ``with``), its exit code, how it was stopped, and
    what its log says.

    Raises:
        PointError: the server could not be started or did not become ready.
    """
    app_interface = scenario.app_for(server)
    assert app_interface is not None, f"{server.name} does not run {scenario.name}"
    point.app, interface = app_interface
    port = 0 if server.port_line else free_port()
    extra = " ".join(filter(None, (scenario.server_args.get(server.name, ""), extra_args)))
    argv = server.argv(point.app, interface, port, point.workers, extra)
    executable = VENV_BIN / argv[0]
    point.argv = [*settings.pinning.server_prefix(), str(executable), *argv[1:]]
    if server.subject and settings.swserve_missing:
        raise PointError(settings.swserve_missing)
    if not executable.exists():
        raise PointError(f"{executable} not found")
    variant = re.sub(r"\W+", "_", point.variant)
    log_path = settings.workdir / f"{server.name}-{scenario.name}-{variant}-{point.repeat}.log"
    poll_s = STARTUP_POLL_S if scenario.kind == STARTUP else POLL_INTERVAL_S
    env = server_env()
    started = time.monotonic()  # just before Popen: start-up counts the fork and exec too
    with (
        log_path.open("w") as log_file,
        session(
            point.argv, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        ) as proc,
    ):
        run_end: int | None = None
        try:
            point.port = wait_ready(
                proc,
                log_path,
                port,
                server.port_line,
                scenario.probe_path,
                settings.ready_timeout_s,
                poll_s,
            )
            point.startup_s = round(time.monotonic() - started, 4)
            yield proc
            run_end = log_path.stat().st_size  # what the server logged before we stop it
            if proc.poll() is not None:
                raise PointError(f"server exited with code {proc.returncode} during the run")
        finally:
            point.stopped_with = stop_group(proc)
            point.exit_code = proc.returncode
            data = log_path.read_bytes()
            read_server_log(server, data.decode(errors="replace"), point)
            if run_end is not None:
                point.server_log_problems = problem_lines(data[:run_end].decode(errors="replace"))
                point.server_log_problems_at_stop = problem_lines(
                    data[run_end:].decode(errors="replace")
                )


PROBLEM_RE: Final = re.compile(r"WARN|ERROR|CRITICAL|Traceback|Exception|exit code|killed", re.I)
MAX_PROBLEM_LINES: Final = 60


def problem_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if PROBLEM_RE.search(line)][:MAX_PROBLEM_LINES]


def read_server_log(server: Server, text: str, point: Point) -> None:
    """Keep the log's tail and its warnings/errors, and count the reload-related events."""
    point.server_log_tail = tail(text)
    point.server_log_problems = problem_lines(text)
    point.server_fd_trouble = [line for line in text.splitlines() if FD_TROUBLE_RE.search(line)]
    del point.server_fd_trouble[MAX_PROBLEM_LINES:]

    def count(pattern: str) -> int | None:
        return len(re.findall(pattern, text)) if pattern else None

    point.hups_acknowledged = count(server.hup_ack_line)
    point.worker_starts = count(server.worker_start_line)
    totals = list(re.finditer(server.replacements_line, text)) if server.replacements_line else []
    if totals:
        point.worker_replacements = sum(map(int, re.findall(r"\d+", totals[-1].group(1))))


def measure(server: Server, scenario: Scenario, settings: Settings, point: Point) -> None:
    """Measure one point of ``scenario`` on ``server``; fills in ``point``.

    Raises:
        PointError: the point could not be measured.
    """
    if scenario.kind == OPENLOOP:
        measure_openloop(server, scenario, settings, point)
        return
    if scenario.kind == SLOWLORIS:
        measure_slowloris(server, scenario, settings, point)
        return
    if scenario.kind == IDLE:
        measure_idle(server, scenario, settings, point)
        return
    if scenario.kind == STARTUP:
        with served(server, scenario, settings, point):
            pass  # the point is how long served() waited for the first answer
        return
    extra = ""
    if point.variant in (CHURN, RECYCLE) and server.max_requests:
        extra = server.max_requests.format(
            n=settings.max_requests, jitter=settings.max_requests // 2
        )
    script = None
    if scenario.lua:
        script = settings.workdir / f"{scenario.name}.lua"
        script.write_text(scenario.lua)
    with served(server, scenario, settings, point, extra) as proc:
        drive = functools.partial(
            run_wrk,
            f"http://{HOST}:{point.port}{scenario.path}",
            connections=point.connections,
            script=script,
            pinning=settings.pinning,
        )
        if settings.warmup_s > 0:
            drive(duration_s=settings.warmup_s)
        point.loadavg_1m = os.getloadavg()[0]
        cpu_before, user_before, _ = tree_ticks(proc.pid)
        wall_before = time.monotonic()
        hups = None
        if point.variant == CHURN:
            hups = HupSender(proc, settings.hup_interval_s, window_s=point.duration_s - 1.0)
            point.hup_target = hups.target
            hups.start()
        try:
            result, point.wrk_output = drive(duration_s=point.duration_s)
        finally:
            if hups is not None:
                hups.finish()
                point.hups_sent = len(hups.offsets)
                point.hup_offsets_s = hups.offsets
        wall = time.monotonic() - wall_before
        cpu_after, user_after, point.tree_processes = tree_ticks(proc.pid)
    if hups is not None and hups.error:
        raise PointError(f"SIGHUP sender: {hups.error}")
    if result.requests == 0:
        raise PointError("wrk completed no request")
    point.rps = result.rps
    point.requests = result.requests
    point.latency_ms = result.latency_ms
    point.non_2xx_3xx = result.non_2xx_3xx
    point.socket_errors = result.socket_errors
    point.errors = result.non_2xx_3xx + sum(result.socket_errors.values())
    point.cpu_s = round(cpu_after - cpu_before, 3)
    point.cpu_us_per_req = round(point.cpu_s * 1e6 / result.requests, 2)
    point.user_us_per_req = round((user_after - user_before) * 1e6 / result.requests, 2)
    point.server_cores_used = round(point.cpu_s / wall, 3)


def process_description(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError as exc:
        return f"pid {pid}: {exc}"
    return f"pid {pid}: {cmdline.decode(errors='replace')}"


class HupSender(threading.Thread):
    """Send SIGHUP to the launched server process every ``interval_s`` within ``window_s``.

    The target is the process the harness started (``taskset`` execs the server, so the pid is
    the server's own): swserve's master, gunicorn's arbiter, uvicorn's supervisor, granian's
    main process. Never the process group, which would signal the workers too.
    """

    def __init__(self, proc: subprocess.Popen[Any], interval_s: float, window_s: float) -> None:
        super().__init__(name="sighup-sender", daemon=True)
        self.proc = proc
        self.interval_s = interval_s
        self.window_s = window_s
        self.target = process_description(proc.pid)
        self.offsets: list[float] = []  # seconds after start() at which each SIGHUP was sent
        self.error = ""
        self._stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        due = self.interval_s
        while due <= self.window_s and not self._stop_event.wait(
            max(0.0, started + due - time.monotonic())
        ):
            if self.proc.poll() is not None:
                self.error = f"the server exited (code {self.proc.returncode}) during the run"
                return
            try:
                os.kill(self.proc.pid, signal.SIGHUP)
            except OSError as exc:
                self.error = f"kill({self.proc.pid}, SIGHUP): {exc}"
                return
            self.offsets.append(round(time.monotonic() - started, 3))
            due += self.interval_s

    def finish(self) -> None:
        self._stop_event.set()
        self.join(timeout=5.0)


def measure_openloop(server: Server, scenario: Scenario, settings: Settings, point: Point) -> None:
    """Run openloop.py at the point's rate against ``server``; keep its JSON in ``point``.

    Raises:
        PointError: the point could not be measured.
    """
    rate = variant_rate(point.variant)
    out = settings.workdir / f"openloop-{server.name}-{point.variant.replace('/', '')}.json"
    with served(server, scenario, settings, point) as proc:
        base = [*settings.pinning.load_prefix(), sys.executable, str(OPENLOOP_SCRIPT)]
        base += ["--port", str(point.port), "--connections", str(point.connections)]
        base += ["--timeout", f"{OPENLOOP_TIMEOUT_S:g}"]
        if settings.warmup_s > 0:  # a different seed: the measured schedule stays unseen
            warmup = ["--rate", f"{OPENLOOP_WARMUP_RATE:g}", "--duration", str(settings.warmup_s)]
            run_openloop([*base, *warmup, "--seed", str(settings.seed + 1000)], settings.warmup_s)
        point.loadavg_1m = os.getloadavg()[0]
        cpu_before, _ = tree_cpu(proc.pid)
        wall_before = time.monotonic()
        argv = [*base, "--rate", f"{rate:g}", "--duration", str(point.duration_s)]
        argv += ["--seed", str(settings.seed), "--output", str(out)]
        run_openloop(argv, point.duration_s)
        wall = time.monotonic() - wall_before
        cpu_after, point.tree_processes = tree_cpu(proc.pid)
    try:
        point.openloop = json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        raise PointError(f"openloop.py wrote no result: {exc}") from exc
    run = point.openloop["run"]
    if not run["ok"]:
        raise PointError(f"no request succeeded: {run['errors_by_kind']}")
    point.requests = run["ok"]
    point.rps = run["achieved_rps"]
    point.errors = run["errors"]
    point.cpu_s = round(cpu_after - cpu_before, 3)
    point.cpu_us_per_req = round(point.cpu_s * 1e6 / (run["ok"] + run["errors"]), 2)
    point.server_cores_used = round(point.cpu_s / wall, 3)


def run_openloop(argv: list[str], duration_s: float) -> None:
    limit = duration_s + OPENLOOP_TIMEOUT_S + 3 * WRK_SLACK_S  # it bounds itself; this is a guard
    with session(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            output, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired as exc:
            raise PointError(f"openloop.py did not finish within {limit:g} s") from exc
    if proc.returncode != 0:
        raise PointError(f"openloop.py exited with code {proc.returncode}: {tail(output, 8)}")


def measure_slowloris(server: Server, scenario: Scenario, settings: Settings, point: Point) -> None:
    """One point of the slowloris pair: wrk alone (clean), or while slowloris.py holds its
    connections open to the same server (from before the warm-up to the end of the run).

    A server that slowloris blocks completely is a result, not a failure: wrk's duration bounds
    the run, it completes no request (req/s 0), and the client stops on its own deadline if the
    harness could not stop it.

    Raises:
        PointError: the point could not be measured.
    """
    held = point.variant == HELD
    with served(server, scenario, settings, point) as proc:
        drive = functools.partial(
            run_wrk,
            f"http://{HOST}:{point.port}{scenario.path}",
            connections=point.connections,
            script=None,
            pinning=settings.pinning,
        )
        with contextlib.ExitStack() as stack:
            client = None
            if held:
                client = stack.enter_context(
                    SlowlorisRun(point.port or 0, point.duration_s, settings)
                )
                client.wait_ready()
            soak_until = time.monotonic() + SLOWLORIS_SOAK_S
            if settings.warmup_s > 0:
                drive(duration_s=settings.warmup_s)
            if held:
                time.sleep(max(0.0, soak_until - time.monotonic()))
            point.loadavg_1m = os.getloadavg()[0]
            cpu_before, _ = tree_cpu(proc.pid)
            client_cpu_before = client.cpu() if client else 0.0
            wall_before = time.monotonic()
            result, point.wrk_output = drive(duration_s=point.duration_s)
            wall_after = time.monotonic()
            cpu_after, point.tree_processes = tree_cpu(proc.pid)
            client_cpu = client.cpu() - client_cpu_before if client else 0.0
            point.server_fd_limit, point.server_fds_max = tree_fds(proc.pid)
            if client is not None:
                point.slowloris = client.finish()
                window = slowloris_window(point.slowloris, wall_before, wall_after)
                window["client_cpu_run_s"] = round(client_cpu, 3)
                point.slowloris["window"] = window
    point.rps = result.rps
    point.requests = result.requests
    point.latency_ms = result.latency_ms if result.requests else {}
    point.non_2xx_3xx = result.non_2xx_3xx
    point.socket_errors = result.socket_errors
    point.errors = result.non_2xx_3xx + sum(result.socket_errors.values())
    point.cpu_s = round(cpu_after - cpu_before, 3)
    if result.requests:
        point.cpu_us_per_req = round(point.cpu_s * 1e6 / result.requests, 2)
    point.server_cores_used = round(point.cpu_s / (wall_after - wall_before), 3)


def measure_idle(server: Server, scenario: Scenario, settings: Settings, point: Point) -> None:
    """One point of the idle-connections pair: wrk alone (*without*), or while idle.py holds
    its keep-alive connections open to the same server (*with*: from before the warm-up to the
    end of the run). Both record the server's memory before and after the measured run.

    Raises:
        PointError: the point could not be measured.
    """
    with served(server, scenario, settings, point) as proc:
        drive = functools.partial(
            run_wrk,
            f"http://{HOST}:{point.port}{scenario.path}",
            connections=point.connections,
            script=None,
            pinning=settings.pinning,
        )
        with contextlib.ExitStack() as stack:
            client = None
            if point.variant == WITH:
                client = stack.enter_context(IdleRun(point.port or 0, point.duration_s, settings))
                client.wait_ready()
            if settings.warmup_s > 0:
                drive(duration_s=settings.warmup_s)
            point.memory_before_run = asdict(tree_memory(proc.pid, server.front_processes))
            del point.memory_before_run["front_processes"]
            point.loadavg_1m = os.getloadavg()[0]
            cpu_before, _ = tree_cpu(proc.pid)
            wall_before = time.monotonic()
            result, point.wrk_output = drive(duration_s=point.duration_s)
            wall_after = time.monotonic()
            cpu_after, point.tree_processes = tree_cpu(proc.pid)
            memory = tree_memory(proc.pid, server.front_processes)
            point.server_fd_limit, point.server_fds_max = tree_fds(proc.pid)
            if client is not None:
                point.idle = client.finish()
                point.idle["window"] = idle_window(point.idle, wall_before, wall_after)
    point.rss_front_kib = memory.rss_front_kib
    point.rss_tree_kib = memory.rss_tree_kib
    point.pss_tree_kib = memory.pss_tree_kib
    point.front_processes = memory.front_processes
    point.rps = result.rps
    point.requests = result.requests
    point.latency_ms = result.latency_ms if result.requests else {}
    point.non_2xx_3xx = result.non_2xx_3xx
    point.socket_errors = result.socket_errors
    point.errors = result.non_2xx_3xx + sum(result.socket_errors.values())
    point.cpu_s = round(cpu_after - cpu_before, 3)
    if result.requests:
        point.cpu_us_per_req = round(point.cpu_s * 1e6 / result.requests, 2)
    point.server_cores_used = round(point.cpu_s / (wall_after - wall_before), 3)


def idle_window(result: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """idle.py's figures within the measured run [start, end] (time.monotonic())."""
    open_counts = [n for t, n in result["timeline"] if start <= t <= end]
    until_end = [n for t, n in result["timeline"] if t <= end]
    return {
        "start": round(start, 4),
        "end": round(end, 4),
        "open_min": min(open_counts) if open_counts else None,
        "open_max": max(open_counts) if open_counts else None,
        # open when the memory after the run was sampled (the client's last sample before the
        # end of the run: at most its sampling interval, 0.5 s, earlier)
        "open_at_end": until_end[-1] if until_end else result["ready_open"],
        "server_closes_run": sum(1 for e in result["server_closes"] if start <= e["t"] <= end),
        "server_closes_total": sum(
            v for k, v in result["counts"].items() if k.startswith("closed_by_server")
        ),
    }


@dataclass(frozen=True)
class Memory:
    rss_front_kib: int | None  # the processes holding the connections
    rss_tree_kib: int | None  # every process of the tree, shared pages counted in each
    pss_tree_kib: int | None  # every process of the tree, shared pages split among them
    front_processes: list[str]  # "pid: command line" of the processes in rss_front_kib


def _status_kib(pid: int, path: str, key: str) -> int | None:
    """A ``Key:   N kB`` figure from /proc/<pid>/<path>, or None (gone, or no such key)."""
    try:
        text = Path(f"/proc/{pid}/{path}").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else None


def tree_memory(root: int, front_pattern: str) -> Memory:
    """RSS and PSS of ``root``'s process tree, and the RSS of its ``front_pattern`` processes.

    ``front_pattern`` matches the command line (swserve sets its process titles there); ""
    means every process of the tree (the anchors: what is comparable is the whole server).
    """
    stats = read_stats()
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, stat in stats.items():
        children[stat.ppid].append(pid)
    rss: dict[int, int] = {}
    pss: dict[int, int] = {}
    front: list[str] = []
    front_pids: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children[pid])
        if (kib := _status_kib(pid, "status", "VmRSS")) is None:
            continue  # a zombie or a kernel thread has no VmRSS
        rss[pid] = kib
        if (pss_kib := _status_kib(pid, "smaps_rollup", "Pss")) is not None:
            pss[pid] = pss_kib
        described = process_description(pid)
        if not front_pattern or re.search(front_pattern, described.partition(": ")[2]):
            front_pids.append(pid)
            front.append(described)
    return Memory(
        rss_front_kib=sum(rss[pid] for pid in front_pids) if front_pids else None,
        rss_tree_kib=sum(rss.values()) if rss else None,
        pss_tree_kib=sum(pss.values()) if pss else None,
        front_processes=front,
    )


class HeldClient:
    """A client script that holds connections open to one server, in its own session.

    It prints ``ready <open> <failed>`` once its ramp is over, holds the connections until
    SIGTERM from ``finish`` or, failing that, its own ``--max-seconds`` deadline, and writes a
    JSON result; the session is stopped on exit whatever happened.
    """

    name = ""
    ramp_timeout_s = 0.0

    def __init__(self, argv: list[str], output: Path, errors: Path) -> None:
        self.argv = argv
        self.output = output
        self.errors = errors
        self._stack = contextlib.ExitStack()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = ""

    def __enter__(self) -> Self:
        self.output.unlink(missing_ok=True)  # a port may come round again: no stale result
        with self._stack:
            err = self._stack.enter_context(self.errors.open("wb"))
            self.proc = self._stack.enter_context(
                session(self.argv, stdout=subprocess.PIPE, stderr=err)
            )
            self._stack = self._stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def wait_ready(self) -> None:
        """Wait for its ``ready <open> <failed>`` line (the ramp is over).

        Raises:
            PointError: it exited or said nothing within the ramp timeout (+ slack).
        """
        assert self.proc is not None
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.ramp_timeout_s + 10.0
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise PointError(
                    f"{self.name} was not ready within {self.ramp_timeout_s + 10:g} s" + self._err()
                )
            readable, _, _ = select.select([self.proc.stdout], [], [], left)
            if readable:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    raise PointError(f"{self.name} exited before it was ready{self._err()}")
                line += chunk
        self.ready = line.decode(errors="replace").strip()
        log(f"    {self.name}: {self.ready} (open, failed)")

    def cpu(self) -> float:
        assert self.proc is not None
        return tree_cpu(self.proc.pid)[0]

    def finish(self) -> dict[str, Any]:
        """Stop the client (SIGTERM: it closes its connections and writes its result); read it.

        Raises:
            PointError: it wrote no result.
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the client itself; taskset exec'd it
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_GRACE_S)
        try:
            result: dict[str, Any] = json.loads(self.output.read_text())
        except (OSError, ValueError) as exc:
            raise PointError(f"{self.name} wrote no result: {exc}{self._err()}") from exc
        result["argv"] = self.argv
        result["exit_code"] = self.proc.returncode
        return result

    def _err(self) -> str:
        text = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return f": {tail(text, 8)}" if text.strip() else ""


class SlowlorisRun(HeldClient):
    """slowloris.py against one server, pinned with the server.

    It is mostly asleep (one byte per connection per second), so it shares the server's CPUs
    rather than wrk's; its own CPU time is in its result.
    """

    name = "slowloris.py"
    ramp_timeout_s = SLOWLORIS_RAMP_TIMEOUT_S

    def __init__(self, port: int, duration_s: int, settings: Settings) -> None:
        # its own deadline: the ramp, the soak (which holds the warm-up), the run, wrk's slack
        max_seconds = SLOWLORIS_RAMP_TIMEOUT_S + SLOWLORIS_SOAK_S + duration_s
        max_seconds += settings.warmup_s + WRK_SLACK_S
        output = settings.workdir / f"slowloris-{port}.json"
        argv = [*settings.pinning.server_prefix(), sys.executable, str(SLOWLORIS_SCRIPT)]
        argv += ["--host", HOST, "--port", str(port)]
        argv += ["--connections", str(SLOWLORIS_CONNECTIONS)]
        argv += ["--ramp-timeout", f"{SLOWLORIS_RAMP_TIMEOUT_S:g}"]
        argv += ["--max-seconds", f"{max_seconds:g}", "--output", str(output)]
        super().__init__(argv, output, settings.workdir / f"slowloris-{port}.err")


class IdleRun(HeldClient):
    """idle.py against one server: its connections do one exchange, then stay silent.

    It is pinned with wrk (the load side): it works only during its ramp, before the warm-up,
    and sleeps without a single wake-up while it holds the connections.
    """

    name = "idle.py"
    ramp_timeout_s = IDLE_RAMP_TIMEOUT_S

    def __init__(self, port: int, duration_s: int, settings: Settings) -> None:
        max_seconds = IDLE_RAMP_TIMEOUT_S + duration_s + settings.warmup_s + WRK_SLACK_S
        output = settings.workdir / f"idle-{port}.json"
        argv = [*settings.pinning.load_prefix(), sys.executable, str(IDLE_SCRIPT)]
        argv += ["--host", HOST, "--port", str(port)]
        argv += ["--connections", str(IDLE_CONNECTIONS)]
        argv += ["--ramp-timeout", f"{IDLE_RAMP_TIMEOUT_S:g}"]
        argv += ["--max-seconds", f"{max_seconds:g}", "--output", str(output)]
        super().__init__(argv, output, settings.workdir / f"idle-{port}.err")


def slowloris_window(result: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """The client's figures within the measured run [start, end] (time.monotonic())."""
    closes = result["server_closes"]
    inside = [e for e in closes if start <= e["t"] <= end]
    open_counts = [n for t, n in result["timeline"] if start <= t <= end]
    lifetimes = sorted(e["lifetime_s"] for e in closes)
    statuses: defaultdict[str, int] = defaultdict(int)
    for event in inside:
        statuses[event["status"]] += 1
    return {
        "start": round(start, 4),
        "end": round(end, 4),
        "open_min": min(open_counts) if open_counts else None,
        "open_max": max(open_counts) if open_counts else None,
        "server_closes": len(inside),
        "server_closes_by_status": dict(statuses),
        # over the client's whole life, from the ramp to the stop
        "server_closes_total": sum(
            v for k, v in result["counts"].items() if k.startswith("closed_by_server")
        ),
        "lifetime_median_s": statistics.median(lifetimes) if lifetimes else None,
        "client_cpu_s": result["cpu_s"],
        "client_held_s": result["held_s"],
    }


def tree_fds(root: int) -> tuple[int | None, int | None]:
    """The lowest soft RLIMIT_NOFILE and the most open fds of any process in ``root``'s tree."""
    stats = read_stats()
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, stat in stats.items():
        children[stat.ppid].append(pid)
    limits: list[int] = []
    counts: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children[pid])
        with contextlib.suppress(OSError, ValueError):
            counts.append(len(os.listdir(f"/proc/{pid}/fd")))
            limits_text = Path(f"/proc/{pid}/limits").read_text()
            match = re.search(r"^Max open files\s+(\d+|unlimited)", limits_text, re.M)
            if match and match.group(1).isdigit():
                limits.append(int(match.group(1)))
    return (min(limits) if limits else None), (max(counts) if counts else None)


def record_failure(server: Server, point: Point, exc: PointError) -> None:
    """Record ``exc`` on ``point``; a usage error from an optional CLI variant is a skip."""
    point.status, point.reason = exc.status, exc.reason
    if (
        server.skip_if_rejected
        and point.exit_code == 2
        and CLI_REJECTED_RE.search(point.server_log_tail)
    ):
        point.status = "skipped"
        point.reason = f"the CLI rejected {server.name}'s options: {tail(point.server_log_tail, 1)}"


@dataclass(frozen=True)
class PlanItem:
    scenario: Scenario
    repeat: int
    server: Server
    variant: str = ""


def make_plan(
    scenarios: Sequence[Scenario],
    servers: Sequence[Server],
    settings: Settings,
    repeat: int | None,
    *,
    servers_given: bool = True,
) -> list[PlanItem]:
    """Every point to measure, interleaved so that drift hits every server alike.

    wrk and openloop scenarios: per variant (rate), per repeat, every server in turn
    (A B C A B C). reload, slowloris and idle-connections: per repeat, per server, its two points back to back
    (so the ratio between them is taken over the shortest time), in alternating order. Unless
    ``servers_given`` (``--servers``), a scenario with ``default_servers`` runs only those.
    """
    plan: list[PlanItem] = []
    for scenario in scenarios:
        eligible = [server for server in servers if scenario.app_for(server) is not None]
        if scenario.default_servers and not servers_given:
            eligible = [server for server in eligible if server.name in scenario.default_servers]
        repeats = range(1, (repeat or scenario.repeat or settings.suite.repeat) + 1)
        variants = settings.variants(scenario)
        if scenario.kind in {RELOAD, SLOWLORIS, IDLE}:
            plan += [
                PlanItem(scenario, rep, server, variant)
                for rep in repeats
                for server in eligible
                for variant in (variants if rep % 2 else variants[::-1])
            ]
        else:
            plan += [
                PlanItem(scenario, rep, server, variant)
                for variant in variants
                for rep in repeats
                for server in eligible
            ]
    return plan


def describe_point(point: Point) -> str:
    if point.rps is None and point.startup_s is not None:
        return f"first 200 after {point.startup_s * 1e3:.0f} ms"
    if point.openloop:
        run = point.openloop["run"]
        ideal = point.openloop["ideal"]["fast"]["p99_ms"]
        return (
            f"fast p50 {_fmt(run['fast']['p50_ms'], 2)} / p99 {_fmt(run['fast']['p99_ms'], 1)}"
            f" ms (ideal {_fmt(ideal, 1)}), slow p99 {_fmt(run['slow']['p99_ms'], 1)} ms,"
            f" {point.errors} errors"
        )
    text = (
        f"{point.rps:,.0f} req/s, {_fmt(point.cpu_us_per_req)} µs CPU/req, "
        f"p99 {point.latency_ms.get('p99', math.nan):.2f} ms, {point.errors} errors"
    )
    if point.slowloris:
        window = point.slowloris["window"]
        text += (
            f"; slowloris: {window['open_min']}-{window['open_max']} held during the run, "
            f"{window['server_closes']} closed by the server during it "
            f"({window['server_closes_total']} in all), client CPU {window['client_cpu_s']} s"
        )
    if point.hups_sent is not None:
        text += f", {point.hups_sent} SIGHUPs sent, {point.hups_acknowledged} acknowledged"
    if point.rss_tree_kib is not None:
        text += f"; RSS {_mib(point.rss_front_kib)} MiB"
        if point.rss_front_kib != point.rss_tree_kib:
            text += f" (whole tree {_mib(point.rss_tree_kib)} MiB)"
    if point.idle:
        window = point.idle["window"]
        text += (
            f"; {window['open_min']}-{window['open_max']} idle connections held during the run, "
            f"{window['open_at_end']} at its end"
        )
    return text


def _mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.1f}"


def run_plan(plan: list[PlanItem], settings: Settings) -> tuple[list[Point], str]:
    """Measure every point of ``plan`` in order.

    Returns:
        The points, and the name of the interruption that cut the run short (or "").
    """
    points: list[Point] = []
    # (server, scenario) -> why it is not tried again in this run; scenario "*" means all.
    given_up: dict[tuple[str, str], str] = {}
    for index, item in enumerate(plan, start=1):
        scenario, rep, server = item.scenario, item.repeat, item.server
        variant = f" {item.variant}" if item.variant else ""
        prefix = f"[{index}/{len(plan)}] {scenario.name}{variant} {server.name} #{rep}"
        point = Point(
            scenario=scenario.name,
            server=server.name,
            repeat=rep,
            variant=item.variant,
            pinning=settings.pinning.describe(),
            connections=settings.connections_for(scenario),
            duration_s=settings.duration_for(scenario),
            workers=settings.workers_for(scenario),
        )
        skip_reason = given_up.get((server.name, scenario.name)) or given_up.get((server.name, "*"))
        try:
            if skip_reason:
                raise PointError(skip_reason, status="skipped")
            measure(server, scenario, settings, point)
            log(f"{prefix}: {describe_point(point)}")
        except PointError as exc:
            record_failure(server, point, exc)
            log(f"{prefix}: {point.status}: {point.reason.splitlines()[0]}")
            if point.status == "skipped" and not skip_reason:
                given_up[server.name, "*"] = point.reason  # the CLI won't change mid-run
            elif point.status == "failed" and point.port is None:  # never became ready
                given_up[server.name, scenario.name] = (
                    f"not retried after failing to start in repeat {rep}: {point.reason}"
                )
        except (KeyboardInterrupt, StopRequestedError) as exc:
            log(f"{prefix}: interrupted; writing the points measured so far")
            return points, type(exc).__name__
        except Exception:  # a harness bug: keep it in the results, go on with the other points
            point.status, point.reason = "failed", f"harness error:\n{traceback.format_exc()}"
            log(f"{prefix}: {point.reason}")
        points.append(point)
    return points, ""


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


@dataclass
class Summary:
    scenario: str
    server: str
    runs: int
    ok: int
    rps: float | None
    cpu_us_per_req: float | None
    p50_ms: float | None
    p99_ms: float | None
    cores: float | None
    errors: int
    note: str
    user_us_per_req: float | None = None


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def stopped_cleanly(point: Point) -> bool:
    """SIGTERM was enough, and the server exited 0 (or died of the SIGTERM itself)."""
    return point.stopped_with == "SIGTERM" and point.exit_code in {0, -signal.SIGTERM}


def group_notes(group: Sequence[Point]) -> str:
    """The first failure or skip of a group of points, and any unclean stops."""
    ok = [p for p in group if p.status == "ok"]
    not_ok = [p for p in group if p.status != "ok"]
    notes = [f"{p.status}: {p.reason.splitlines()[0][:100]}" for p in not_ok[:1]]
    unclean = [p for p in ok if not stopped_cleanly(p)]
    if unclean:
        exits = ", ".join(sorted({f"{p.stopped_with} -> exit {p.exit_code}" for p in unclean}))
        notes.append(f"unclean stop in {len(unclean)}/{len(ok)} ok runs ({exits})")
    return "; ".join(notes)


def summarise(points: list[Point]) -> list[Summary]:
    """Medians per (scenario, server) of the wrk scenarios (the others have their own)."""
    groups: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for point in points:
        if SCENARIOS_BY_NAME[point.scenario].kind == WRK:
            groups[point.scenario, point.server].append(point)
    scenario_rank = {name: i for i, name in enumerate(SCENARIOS_BY_NAME)}
    server_rank = {name: i for i, name in enumerate(SERVERS_BY_NAME)}
    summaries = []
    for (scenario, server), group in sorted(
        groups.items(), key=lambda item: (scenario_rank[item[0][0]], server_rank[item[0][1]])
    ):
        ok = [p for p in group if p.status == "ok"]
        note = group_notes(group)
        summaries.append(
            Summary(
                scenario=scenario,
                server=server,
                runs=len(group),
                ok=len(ok),
                rps=_median([p.rps for p in ok]),
                cpu_us_per_req=_median([p.cpu_us_per_req for p in ok]),
                p50_ms=_median([p.latency_ms.get("p50") for p in ok]),
                p99_ms=_median([p.latency_ms.get("p99") for p in ok]),
                cores=_median([p.server_cores_used for p in ok]),
                errors=sum(p.errors or 0 for p in ok),
                note=note,
                user_us_per_req=_median([p.user_us_per_req for p in ok]),
            )
        )
    return summaries


def _load_range(points: list[Point]) -> str:
    loads = [p.loadavg_1m for p in points if p.loadavg_1m is not None]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"


def _ratios(subject: Summary | None, row: Summary) -> list[str]:
    """swserve's req/s ÷ the row's, and swserve's CPU µs/req ÷ the row's."""
    if subject is None or subject is row or subject.rps is None or not row.rps:
        return ["", ""]
    cpu = (
        subject.cpu_us_per_req / row.cpu_us_per_req
        if subject.cpu_us_per_req is not None and row.cpu_us_per_req
        else None
    )
    return [_fmt(subject.rps / row.rps, 2), _fmt(cpu, 2)]


def markdown(
    summaries: list[Summary],
    points: list[Point],
    meta: dict[str, Any],
    *,
    chart: str = "",
    for_docs: bool = False,
) -> str:
    """The run's report; ``chart``: the PNG's path relative to the report, if one was drawn.

    ``for_docs`` (the committed snapshot): no title, failures by their reason only (no logs).
    """
    lines = [
        f"# swserve load test: {meta['label']}",
        "",
        f"{meta['started']} · {meta['cpus']} CPUs · pinning {meta['pinning']}",
        "",
        f"1-minute load average before the runs: {_load_range(points)} "
        "(above the CPU count, other work on the machine disturbed the numbers)",
    ]
    if for_docs:
        lines = lines[4:]
    lines += ["", *bars_section(evaluate_bars(summaries, points))]
    if chart:
        lines += ["", f"![req/s and CPU µs per request per scenario and server]({chart})"]
    if summaries or not any(SCENARIOS_BY_NAME[p.scenario].kind != WRK for p in points):
        lines += ["", *wrk_table(summaries, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == RELOAD for p in points):
        lines += ["", *reload_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == OPENLOOP for p in points):
        lines += ["", *openloop_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == SLOWLORIS for p in points):
        lines += ["", *slowloris_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == IDLE for p in points):
        lines += ["", *idle_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == STARTUP for p in points):
        lines += ["", *startup_section(points, meta)]
    if not for_docs:  # the snapshot gives them with the machine
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
        lines += ["", f"versions: {versions}"]
    if meta.get("interrupted"):
        lines += ["", f"**Interrupted ({meta['interrupted']}): the run is incomplete.**"]
    first_failures: dict[tuple[str, str, str], Point] = {}
    for point in points:
        if point.status != "ok":
            first_failures.setdefault((point.scenario, point.server, point.variant), point)
    if first_failures and for_docs:
        lines += ["", "## Failed or skipped points (the first of each)", ""]
        lines += [
            f"- {p.server} / {p.scenario} {p.variant}: {p.status}: {p.reason.splitlines()[0]}"
            for p in first_failures.values()
        ]
    elif first_failures:
        lines += ["", "## Failed or skipped points (the first of each)", ""]
        for point in first_failures.values():
            variant = f" {point.variant}" if point.variant else ""
            lines += [f"### {point.server} / {point.scenario}{variant}: {point.status}", "", "```"]
            lines.append(point.reason)
            if point.server_log_tail:
                lines += ["--- server output (tail) ---", tail(point.server_log_tail, 15)]
            lines += ["```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _table(header: list[str], rows: list[list[str]], left: int = 2) -> list[str]:
    """A markdown table; the first ``left`` columns and a last "note" column align left."""
    aligns = ["---"] * left + ["--:"] * (len(header) - left)
    if header[-1] == "note":
        aligns[-1] = "---"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    if not rows:
        rows = [["(no point was measured)", *[""] * (len(header) - 1)]]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def wrk_table(summaries: list[Summary], meta: dict[str, Any]) -> list[str]:
    by_key = {(s.scenario, s.server): s for s in summaries}
    subjects = [
        server.name
        for server in SERVERS
        if server.subject and any(s.server == server.name and s.rps for s in summaries)
    ]
    header = ["scenario", "server", "req/s", "CPU µs/req", "user µs/req", "p50 ms", "p99 ms"]
    header += ["server cores", "errors", "ok/runs"]
    for subject in subjects:
        header += [f"{subject} req/s ratio", f"{subject} CPU/req ratio"]
    header.append("note")
    rows = []
    for s in summaries:
        row = [s.scenario, s.server, _fmt(s.rps, 0), _fmt(s.cpu_us_per_req)]
        row += [_fmt(s.user_us_per_req), _fmt(s.p50_ms, 2), _fmt(s.p99_ms, 2), _fmt(s.cores, 2)]
        row += [str(s.errors) if s.ok else "-", f"{s.ok}/{s.runs}"]
        for subject in subjects:
            row += _ratios(by_key.get((s.scenario, subject)), s)
        row.append(s.note)
        rows.append(row)
    return [
        f"{meta['workers']} worker(s) · wrk -t1 -c{meta['connections']} -d{meta['duration_s']}s"
        f" · {meta['repeat']} interleaved repeats · medians",
        "",
        *_table(header, rows),
        "",
        "*req/s ratio*: the subject's req/s ÷ this row's (above 1: the subject serves more). "
        "*CPU/req ratio*: the subject's CPU µs per request ÷ this row's (below 1: the subject is "
        "cheaper). *user µs/req*: the user-space part of CPU µs/req (the interpreter and the "
        "libraries; the rest is the kernel's: syscalls, wake-ups, context switches). "
        "*server cores*: the server's CPU seconds ÷ wall seconds during the run. "
        "*errors*: non-2xx/3xx responses + socket errors, summed over the ok runs.",
    ]


def _groups(points: list[Point], kind: str) -> dict[tuple[str, str], list[Point]]:
    """The points of ``kind`` scenarios by (server, variant), in the order they were measured."""
    groups: dict[tuple[str, str], list[Point]] = {}
    for point in points:
        if SCENARIOS_BY_NAME[point.scenario].kind == kind:
            groups.setdefault((point.server, point.variant), []).append(point)
    return groups


def _sum(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)


def _first_app(group: Sequence[Point]) -> str:
    app = next((p.app for p in group if p.app), "")
    return app.removeprefix(APPS)


def reload_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, RELOAD)
    some = next(p for group in groups.values() for p in group)
    header = ["server", "app", "point", "req/s", "p50 ms", "p99 ms", "non-2xx"]
    header += ["socket errors c/r/w/t", "SIGHUPs sent / acted on", "worker replacements"]
    header += ["CPU µs/req", "churn ÷ baseline req/s", "churn ÷ baseline CPU/req"]
    header += ["churn ÷ recycle req/s", "bar"]
    header += ["ok/runs", "note"]
    rows: list[list[str]] = []
    bars: list[str] = []
    for (server_name, variant), group in groups.items():
        server = SERVERS_BY_NAME[server_name]
        ok = [p for p in group if p.status == "ok"]
        rps = _median([p.rps for p in ok])
        sockets = {
            kind: sum(p.socket_errors.get(kind, 0) for p in ok)
            for kind in ("connect", "read", "write", "timeout")
        }
        non_2xx = sum(p.non_2xx_3xx or 0 for p in ok)
        hups = "-"
        if variant == CHURN and ok:
            hups = f"{_int(_sum([p.hups_sent for p in ok]))} / "
            hups += _int(_sum([p.hups_acknowledged for p in ok]))
        ratio_text, cpu_ratio_text, recycle_text, bar = "", "", "", ""
        baseline = [p for p in groups.get((server_name, BASELINE), []) if p.status == "ok"]
        base_rps = _median([p.rps for p in baseline])
        recycled = [p for p in groups.get((server_name, RECYCLE), []) if p.status == "ok"]
        recycle_rps = _median([p.rps for p in recycled])
        cpu = _median([p.cpu_us_per_req for p in ok])
        base_cpu = _median([p.cpu_us_per_req for p in baseline])
        if variant == CHURN and cpu is not None and base_cpu:
            cpu_ratio_text = _fmt(cpu / base_cpu, 2)
        if variant == CHURN and rps is not None and base_rps:
            ratio_text = _fmt(rps / base_rps, 2)
        if variant == CHURN and rps is not None and recycle_rps:
            # Issue #3's bar: "throughput during the run >= 90% of the same run without
            # reloads", the run being SIGHUP every 2 s *and* --max-requests 200; the issue
            # calls SIGHUP/SIGUSR1 reloads and --max-requests recycling.
            ratio = rps / recycle_rps
            recycle_text = _fmt(ratio, 2)
            if server.subject:
                errors = non_2xx + sum(sockets.values())
                failed = [f"{errors} errors"] if errors else []
                failed += [f"ratio {ratio:.2f} < 0.90"] if ratio < RELOAD_MIN_RATIO else []
                bar = "FAIL: " + ", ".join(failed) if failed else "PASS"
                bars.append(
                    f"- {server_name}: {errors} errors during churn (bar: 0), churn ÷ recycle "
                    f"req/s {ratio:.2f} (bar: ≥ {RELOAD_MIN_RATIO:.2f}): **{bar}**; "
                    f"churn ÷ baseline {ratio_text or '-'}"
                )
        row = [server_name, _first_app(group), variant, _fmt(rps, 0)]
        row += [_fmt(_median([p.latency_ms.get("p50") for p in ok]), 2)]
        row += [_fmt(_median([p.latency_ms.get("p99") for p in ok]), 2)]
        row += [str(non_2xx) if ok else "-", "/".join(map(str, sockets.values())) if ok else "-"]
        row += [hups, _replacements(server, ok)]
        row += [_fmt(cpu), ratio_text, cpu_ratio_text, recycle_text, bar]
        row += [f"{len(ok)}/{len(group)}", group_notes(group)]
        rows.append(row)
    lines = [
        "## reload: SIGHUP every "
        f"{meta['hup_interval_s']:g} s + max-requests {meta['max_requests']}, vs. no churn",
        "",
        f"wrk -t1 -c{some.connections} -d{some.duration_s}s on the hello app, {some.workers} "
        "workers each; medians over the repeats, errors summed. *churn*: SIGHUP to the process "
        "the harness launched (swserve's master, gunicorn's arbiter, uvicorn's supervisor, "
        "granian's main process) every "
        f"{meta['hup_interval_s']:g} s from a harness thread, plus recycling after "
        f"{meta['max_requests']} requests + jitter up to {meta['max_requests'] // 2} (swserve "
        "`--max-requests`, whose jitter defaults to half; gunicorn `--max-requests "
        "--max-requests-jitter`; uvicorn `--limit-max-requests --limit-max-requests-jitter`; "
        "granian has no request limit: HUP only). *recycle*: the recycling alone, no SIGHUP: "
        'the issue\'s "same run without reloads", which the bar compares with. *baseline*: '
        "without either.",
        "",
        *_table(header, rows, left=3),
        "",
        "*SIGHUPs sent / acted on*: sent during the measured run / log lines saying the server "
        "acted on one. *worker replacements*: worker starts beyond the first "
        f"{some.workers} over the server's whole life (warm-up included), from its log "
        "(swserve: its own count of workers recycled and reloaded, from its last summary line). "
        "*socket errors*: wrk's connect/read/write/timeout. *churn ÷ baseline CPU/req*: what the "
        "churn costs per request; when the server's CPU is the limit, throughput falls by about "
        "its inverse, and it is much less disturbed by other work on the machine than req/s.",
    ]
    if bars:
        lines += ["", "Bars (from the issue):", "", *bars]
    targets = [
        f"- {server_name}: {_shorten(p.hup_target, 110)}"
        for (server_name, variant), group in groups.items()
        if variant == CHURN
        for p in group[:1]
        if p.hup_target
    ]
    if targets:
        lines += ["", "SIGHUP target (the process the harness launched, per server):", ""]
        lines += targets
    for (server_name, variant), group in groups.items():
        if not SERVERS_BY_NAME[server_name].subject:
            continue
        ok = [p for p in group if p.status == "ok"]  # the others are listed below, with their log
        for when, problems in (
            (
                "up to the end of the measured run",
                [x for p in ok for x in p.server_log_problems],
            ),
            (
                "while the harness stopped it (SIGTERM to the process group)",
                [x for p in ok for x in p.server_log_problems_at_stop],
            ),
        ):
            if problems:
                lines += ["", f"{server_name} {variant}: warnings and errors {when}", "", "```"]
                lines += [*problems[:20], "```"]
    uvicorn = [p for p in groups.get(("uvicorn", CHURN), []) if p.status == "ok"]
    if uvicorn:
        acted = _sum([p.hups_acknowledged for p in uvicorn])
        sent = _sum([p.hups_sent for p in uvicorn])
        lines += [
            "",
            f"uvicorn ran `--workers {uvicorn[0].workers}`, so its multiprocess supervisor got "
            f"the SIGHUPs: {sent} sent, {acted} logged as `Received SIGHUP, restarting "
            "processes`. It serves the ASGI hello app (its WSGI adapter is deprecated).",
        ]
    return lines


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _replacements(server: Server, ok: Sequence[Point]) -> str:
    """Worker replacements over each server's life, summed over the ok points."""
    counts = []
    for point in ok:
        if point.worker_starts is not None:
            counts.append(point.worker_starts - point.workers)
        elif point.worker_replacements is not None:
            counts.append(point.worker_replacements)
    if not counts:
        return "-" if ok and not (server.worker_start_line or server.replacements_line) else "?"
    return str(sum(counts))


def _socket_errors(ok: Sequence[Point]) -> str:
    if not ok:
        return "-"
    non_2xx = sum(p.non_2xx_3xx or 0 for p in ok)
    sockets = [
        sum(p.socket_errors.get(kind, 0) for p in ok)
        for kind in ("connect", "read", "write", "timeout")
    ]
    return f"{non_2xx}; {'/'.join(map(str, sockets))}"


def slowloris_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, SLOWLORIS)
    some = next(p for group in groups.values() for p in group)
    header = ["server", "app", "req/s clean", "req/s slowloris", "slowloris ÷ clean"]
    header += ["p99 ms clean", "p99 ms slowloris", "errors clean", "errors slowloris"]
    header += ["CPU µs/req clean", "CPU µs/req slowloris", "held during run"]
    header += ["closed by server: run / all", "answers before close", "closed after s"]
    header += ["server fds / limit", "bar", "ok/runs", "note"]
    rows: list[list[str]] = []
    bars: list[str] = []
    clients: list[str] = []
    for server_name in dict.fromkeys(name for name, _ in groups):
        server = SERVERS_BY_NAME[server_name]
        clean_group = groups.get((server_name, CLEAN), [])
        held_group = groups.get((server_name, HELD), [])
        clean = [p for p in clean_group if p.status == "ok"]
        held = [p for p in held_group if p.status == "ok"]
        windows = [p.slowloris["window"] for p in held if p.slowloris]
        rps_clean = _median([p.rps for p in clean])
        rps_held = _median([p.rps for p in held])
        ratio = rps_held / rps_clean if rps_held is not None and rps_clean else None
        bar = ""
        if server.subject and ratio is not None:
            bar = "PASS" if ratio >= SLOWLORIS_MIN_RATIO else "FAIL"
            errors = sum(p.errors or 0 for p in held)
            bars.append(
                f"- {server_name}: req/s with {SLOWLORIS_CONNECTIONS} slowloris connections ÷ "
                f"clean = {ratio:.3f} (bar: ≥ {SLOWLORIS_MIN_RATIO:.2f}, i.e. < "
                f"{(1 - SLOWLORIS_MIN_RATIO) * 100:.0f} % lost): **{bar}**; {errors} wrk errors "
                "with slowloris"
            )
        statuses: defaultdict[str, int] = defaultdict(int)
        for window in windows:
            for status, count in window["server_closes_by_status"].items():
                statuses[status] += count
        answers = ", ".join(
            f"{'no answer' if k == 'none' else k}: {v}" for k, v in sorted(statuses.items())
        )
        fds = [p for p in held if p.server_fds_max is not None]
        fd_text = "-"
        if fds:
            fd_text = f"{max(p.server_fds_max or 0 for p in fds)} / "
            fd_text += _int(
                min((p.server_fd_limit for p in fds if p.server_fd_limit), default=None)
            )
        row = [server_name, _first_app([*clean_group, *held_group])]
        row += [_fmt(rps_clean, 0), _fmt(rps_held, 0), _fmt(ratio, 3)]
        row += [
            _fmt(_median([p.latency_ms.get("p99") for p in group]), 2) for group in (clean, held)
        ]
        row += [_socket_errors(clean), _socket_errors(held)]
        row += [_fmt(_median([p.cpu_us_per_req for p in group])) for group in (clean, held)]
        if windows:
            low = min((w["open_min"] for w in windows if w["open_min"] is not None), default=None)
            high = max((w["open_max"] for w in windows if w["open_max"] is not None), default=None)
            row += [f"{_int(low)}-{_int(high)} of {SLOWLORIS_CONNECTIONS}"]
            row += [
                f"{sum(w['server_closes'] for w in windows)} / "
                f"{sum(w['server_closes_total'] for w in windows)}"
            ]
            row += [answers or "-"]
            row += [_fmt(_median([w["lifetime_median_s"] for w in windows]), 1)]
        else:
            row += ["-"] * 4
        row += [fd_text, bar, f"{len(clean)}+{len(held)}/{len(clean_group) + len(held_group)}"]
        notes = [group_notes(clean_group), group_notes(held_group)]
        blocked = [p for p in [*clean, *held] if p.requests == 0]
        if blocked:
            notes.append(
                f"blocked: wrk completed no request in {len(blocked)} "
                f"{'/'.join(dict.fromkeys(p.variant for p in blocked))} run(s)"
            )
        trouble = [p.server_fd_trouble[0] for p in [*clean, *held] if p.server_fd_trouble]
        if trouble:
            notes.append(f"out of fds: {_shorten(trouble[0], 120)}")
        row.append("; ".join(filter(None, notes)))
        rows.append(row)
        for point in held:
            client = point.slowloris
            if not client:
                continue
            counts, failed = client["counts"], client.get("connect_errors") or {}
            window = client["window"]
            run_s = window["end"] - window["start"]
            run_share = window["client_cpu_run_s"] / run_s * 100 if run_s else 0.0
            clients.append(
                f"- {server_name}: {client['ready_open']} open after a ramp of "
                f"{client['ramp_s']:.2f} s; held {client['held_s']:.1f} s; "
                f"{counts.get('connects', 0)} connects ({counts.get('reconnects', 0)} "
                "reconnects); failed connects: "
                f"{', '.join(f'{k} {v}' for k, v in failed.items()) or 'none'}; client CPU "
                f"{client['cpu_s']:.2f} s in all, {window['client_cpu_run_s']:.2f} s during "
                f"the measured run ({run_share:.1f} % of a core)"
            )
    lines = [
        f"## slowloris: wrk with and without {SLOWLORIS_CONNECTIONS} slowloris connections open",
        "",
        f"wrk -t1 -c{some.connections} -d{some.duration_s}s on the hello app, {some.workers} "
        "worker(s), a fresh server per point; per server the *clean* and *slowloris* points run "
        "back to back. *slowloris*: `slowloris.py` opens "
        f"{SLOWLORIS_CONNECTIONS} connections, each sending `GET / HTTP/1.1\\r\\nHost: x\\r\\n` "
        "and then one more byte of `X-a: b\\r\\n` per second, never ending the head, and "
        "reconnecting whenever the server closes it; they are opened before the warm-up, held "
        f"{SLOWLORIS_SOAK_S:g} s before the measured run starts and closed after it ends. The "
        f"client is pinned with the server ({meta['pinning']}; it is asleep almost all the time, "
        "its CPU use is listed below). Medians over the repeats, errors summed.",
        "",
        *_table(header, rows, left=2),
        "",
        "*errors*: wrk's non-2xx/3xx responses; socket errors connect/read/write/timeout (wrk "
        "counts a timeout only for a response that arrives more than 2 s late, and leaves it out "
        "of the latencies; a request never answered is not counted at all). *held during "
        "run*: fewest-most slowloris connections open (from the client's side: accepted, or "
        "waiting in the listen backlog) during the measured run. *closed by server*: "
        "slowloris connections the server closed during the measured run / from the ramp to the "
        "stop; *answers before close*: what the server sent before closing those during the "
        "run; *closed after*: median age of the connections the server closed. *server fds*: the "
        "most file descriptors open in one server process right after the run, and the lowest "
        "soft RLIMIT_NOFILE in its process tree (connections still in the listen backlog hold "
        "no fd of the server). A server that slowloris blocks completely shows 0 req/s, no "
        "latencies and, per the above, no wrk errors: see the note.",
    ]
    if bars:
        lines += ["", "Bar (from the issue):", "", *bars]
    if clients:
        lines += ["", "The slowloris client, per point:", "", *clients]
    nofile = meta.get("nofile") or {}
    if nofile:
        lines += [
            "",
            f"RLIMIT_NOFILE of the harness (inherited by the client and the servers): soft "
            f"{nofile['soft_before']} -> {nofile['soft']}, hard {nofile['hard']}.",
        ]
    for (server_name, variant), group in groups.items():
        if not SERVERS_BY_NAME[server_name].subject:
            continue
        problems = [x for p in group if p.status == "ok" for x in p.server_log_problems]
        if problems:
            lines += ["", f"{server_name} {variant}: warnings and errors during the run", "", "```"]
            lines += [*problems[:20], "```"]
    return lines


RELOAD_MIN_RATIO: Final = 0.90
MIXED_MAX_IDEAL_RATIO: Final = 1.2
MIXED_MAX_ANCHOR_RATIO: Final = 0.6
MIXED_ANCHORS: Final = ("gunicorn-gthread", "granian")


def _kind_median(ok: Sequence[Point], kind: str, key: str) -> float | None:
    return _median([p.openloop["run"][kind][key] for p in ok])


def openloop_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, OPENLOOP)
    some = next(p for group in groups.values() for p in group)
    params = next((p.openloop for group in groups.values() for p in group if p.openloop), {})
    header = ["rate", "server", "fast p50 ms", "fast p99 ms", "fast p99.9 ms", "slow p50 ms"]
    header += ["slow p99 ms", "slow p99.9 ms", "fast p99 ÷ ideal", "errors", "done req/s"]
    header += ["client wait p99 ms", "generator lag p99 ms", "CPU µs/req", "ok/runs", "note"]
    rows: list[list[str]] = []
    fast_p99: dict[tuple[str, str], float | None] = {}
    for variant in dict.fromkeys(v for _, v in groups):
        ideal = next(
            (
                p.openloop["ideal"]
                for (_, v), g in groups.items()
                if v == variant
                for p in g
                if p.openloop
            ),
            None,
        )
        ideal_p99 = ideal["fast"]["p99_ms"] if ideal else None
        fast_p99["ideal", variant] = ideal_p99
        if ideal:
            row = [variant, "**ideal dispatcher**"]
            row += [
                _fmt(ideal[k][f"p{q}_ms"], 2 if q == "50" else 1)
                for k in ("fast", "slow")
                for q in ("50", "99", "99.9")
            ]
            rows.append([*row, "1.00", "", "", "", "", "", "", "simulated"])
        for (server_name, v), group in groups.items():
            if v != variant:
                continue
            ok = [p for p in group if p.status == "ok" and p.openloop]
            row = [variant, server_name]
            row += [
                _fmt(_kind_median(ok, kind, f"p{q}_ms"), 2 if q == "50" else 1)
                for kind in ("fast", "slow")
                for q in ("50", "99", "99.9")
            ]
            p99 = fast_p99[server_name, variant] = _kind_median(ok, "fast", "p99_ms")
            row.append(_fmt(p99 / ideal_p99, 2) if p99 is not None and ideal_p99 else "-")
            row += [_int(_sum([p.errors for p in ok])) if ok else "-"]
            row += [_fmt(_median([p.rps for p in ok]), 0)]
            row += [_fmt(_kind_median(ok, "client_wait", "p99_ms"), 1)]
            row += [_fmt(_kind_median(ok, "generator_lag", "p99_ms"), 2)]
            row += [_fmt(_median([p.cpu_us_per_req for p in ok]))]
            row += [f"{len(ok)}/{len(group)}", _errors_note(ok, group)]
            rows.append(row)
    ideal_params = params.get("ideal", {})
    service = ideal_params.get("service_ms", {})
    run_params = params.get("params", {})
    lines = [
        "## mixed: open-loop Poisson arrivals, fast (1 ms) and slow (50 ms) requests",
        "",
        f"`openloop.py`: {some.connections} keep-alive connections, "
        f"{_fmt(run_params.get('slow_fraction', 0.1) * 100, 0)} % slow requests, seed "
        f"{meta['seed']} (the same arrival times and fast/slow sequence for every server), "
        f"{some.duration_s} s per rate; {some.workers} workers x 1 thread everywhere. Latency runs "
        "from each request's *scheduled* send time to the end of its response, so waiting for an "
        "idle connection (*client wait*) counts. *ideal dispatcher*: one FIFO queue in front of "
        f"{ideal_params.get('servers', '?')} slots, fed the same arrivals, service times "
        f"{_fmt(service.get('fast'), 2)} ms / {_fmt(service.get('slow'), 2)} ms (nominal + "
        f"{_fmt(ideal_params.get('overhead_ms'), 2)} ms measured sleep overshoot; see "
        "openloop.py). *generator lag*: how late the generator itself released requests; "
        "well above 1 ms means the load generator was starved and the point is suspect.",
        "",
        *_table(header, rows),
    ]
    bars = _mixed_bars(fast_p99, list(dict.fromkeys(v for _, v in groups)))
    if bars:
        lines += ["", "Bars (from the issue):", "", *bars]
    return lines


def _errors_note(ok: Sequence[Point], group: Sequence[Point]) -> str:
    kinds: defaultdict[str, int] = defaultdict(int)
    retried = 0
    for point in ok:
        run = point.openloop["run"]
        retried += run["retried_stale_connections"]
        for kind, count in run["errors_by_kind"].items():
            kinds[kind] += count
    notes = [f"{kind}: {count}" for kind, count in kinds.items()]
    if retried:
        notes.append(f"{retried} retried on a stale keep-alive connection")
    return "; ".join(filter(None, [*notes, group_notes(group)]))


def _mixed_bars(fast_p99: dict[tuple[str, str], float | None], variants: list[str]) -> list[str]:
    bars = []
    subjects = [s.name for s in SERVERS if s.subject]
    for subject in subjects:
        for variant in variants:
            mine, ideal = fast_p99.get((subject, variant)), fast_p99.get(("ideal", variant))
            if mine is None or not ideal:
                continue
            ratio = mine / ideal
            verdict = "PASS" if ratio <= MIXED_MAX_IDEAL_RATIO else "FAIL"
            bars.append(
                f"- {variant}: {subject} fast p99 {mine:.1f} ms = {ratio:.2f}x the ideal's "
                f"{ideal:.1f} ms (bar: ≤ {MIXED_MAX_IDEAL_RATIO}x): **{verdict}**"
            )
        if not variants:
            continue
        lowest = min(variants, key=variant_rate)  # the issue's 170 req/s
        mine = fast_p99.get((subject, lowest))
        for anchor in MIXED_ANCHORS:
            theirs = fast_p99.get((anchor, lowest))
            if mine is None or not theirs:
                continue
            ratio = mine / theirs
            verdict = "PASS" if ratio <= MIXED_MAX_ANCHOR_RATIO else "FAIL"
            bars.append(
                f"- {lowest}: {subject} fast p99 {mine:.1f} ms = {ratio:.2f}x {anchor}'s "
                f"{theirs:.1f} ms (bar: ≤ {MIXED_MAX_ANCHOR_RATIO}x): **{verdict}**"
            )
    return bars


def _ok(group: Sequence[Point]) -> list[Point]:
    return [p for p in group if p.status == "ok"]


def idle_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, IDLE)
    some = next(p for group in groups.values() for p in group)
    header = ["server", "app", "req/s without", "req/s with", "with ÷ without"]
    header += ["p99 ms without", "p99 ms with", "errors without", "errors with"]
    header += ["front RSS MiB without", "front RSS MiB with", "tree RSS MiB with"]
    header += ["tree PSS MiB with", "KiB per connection", "held during run / at end"]
    header += ["closed by server: run / all", "server fds / limit", "ok/runs", "note"]
    rows: list[list[str]] = []
    for server_name in dict.fromkeys(name for name, _ in groups):
        without_group = groups.get((server_name, WITHOUT), [])
        with_group = groups.get((server_name, WITH), [])
        without, held = _ok(without_group), _ok(with_group)
        figures = idle_figures(without, held)
        windows = [p.idle["window"] for p in held if p.idle]
        row = [server_name, _first_app([*without_group, *with_group])]
        row += [_fmt(figures.rps_without, 0), _fmt(figures.rps_with, 0), _fmt(figures.ratio, 3)]
        row += [
            _fmt(_median([p.latency_ms.get("p99") for p in group]), 2) for group in (without, held)
        ]
        row += [_socket_errors(without), _socket_errors(held)]
        row += [_mib(figures.front_without), _mib(figures.front_with)]
        row += [_mib(_median([p.rss_tree_kib for p in held]))]
        row += [_mib(_median([p.pss_tree_kib for p in held]))]
        row += [_fmt(figures.kib_per_connection, 1)]
        if windows:
            low = min((w["open_min"] for w in windows if w["open_min"] is not None), default=None)
            row += [f"{_int(low)}-{max(w['open_max'] or 0 for w in windows)} / {figures.held}"]
            row += [
                f"{sum(w['server_closes_run'] for w in windows)} / "
                f"{sum(w['server_closes_total'] for w in windows)}"
            ]
        else:
            row += ["-", "-"]
        fds = [p for p in held if p.server_fds_max is not None]
        fd_text = "-"
        if fds:
            fd_text = f"{max(p.server_fds_max or 0 for p in fds)} / "
            fd_text += _int(
                min((p.server_fd_limit for p in fds if p.server_fd_limit), default=None)
            )
        row += [fd_text, f"{len(without)}+{len(held)}/{len(without_group) + len(with_group)}"]
        notes = [group_notes(without_group), group_notes(with_group)]
        blocked = [p for p in [*without, *held] if p.requests == 0]
        if blocked:
            notes.append(
                f"blocked: wrk completed no request in {len(blocked)} "
                f"{'/'.join(dict.fromkeys(p.variant for p in blocked))} run(s)"
            )
        trouble = [p.server_fd_trouble[0] for p in [*without, *held] if p.server_fd_trouble]
        if trouble:
            notes.append(f"out of fds: {_shorten(trouble[0], 120)}")
        row.append("; ".join(filter(None, notes)))
        rows.append(row)
    fronts = {
        server_name: sorted(
            {re.sub(r"^pid \d+: ", "", f) for p in group for f in p.front_processes}
        )
        for (server_name, variant), group in groups.items()
        if variant == WITH and SERVERS_BY_NAME[server_name].front_processes
    }
    args = [
        f"{name} `{SCENARIOS_BY_NAME['idle-connections'].server_args[name]}`"
        for name in groups_servers(groups)
    ]
    lines = [
        f"## idle-connections: wrk with and without {IDLE_CONNECTIONS:,} idle keep-alive "
        "connections open",
        "",
        f"wrk -t1 -c{some.connections} -d{some.duration_s}s on the hello app, {some.workers} "
        "worker(s), a fresh server per point; per server the *without* and *with* points run back "
        f"to back. *with*: `idle.py` opens {IDLE_CONNECTIONS:,} connections, each does one "
        "`GET /` and then stays open and silent (a keep-alive connection between requests); "
        "they are opened before the warm-up and closed after the run; a connection the server "
        "closes is not reopened. The client is pinned with wrk "
        f"({meta['pinning']}) and makes no wake-up while it holds them. So that the connections "
        "outlive the run and wrk's get in beside them, the servers get: "
        + "; ".join(args)
        + ". Memory is sampled right after the measured run, the connections still open. Medians "
        "over the repeats, errors summed.",
        "",
        *_table(header, rows, left=2),
        "",
        "*front RSS*: the resident memory of the processes that hold the client connections: "
        "swserve's master in process mode (it runs the reactor), its master and workers in base "
        "mode (every worker is a reactor, with the app in it); for the other servers, which have "
        "no such split, the whole process tree, the figure comparable with swserve's *tree "
        "RSS*. *tree RSS* counts pages shared between the processes once per process; *tree "
        "PSS* splits them. *KiB per connection*: (front RSS with - without) ÷ the connections "
        "held at the end of the run. *held*: from the client's side, during the measured run "
        "(fewest-most) and at its end.",
    ]
    for server_name, front in fronts.items():
        lines += ["", f"{server_name} front processes: " + "; ".join(f"`{f}`" for f in front)]
    nofile = meta.get("nofile") or {}
    if nofile:
        lines += [
            "",
            f"RLIMIT_NOFILE of the harness (inherited by the client and the servers): soft "
            f"{nofile['soft_before']} -> {nofile['soft']}, hard {nofile['hard']}.",
        ]
    return lines


def groups_servers(groups: dict[tuple[str, str], list[Point]]) -> list[str]:
    """The servers of ``groups`` that got scenario-specific options, in the order measured."""
    options = SCENARIOS_BY_NAME["idle-connections"].server_args
    return [name for name in dict.fromkeys(n for n, _ in groups) if name in options]


@dataclass(frozen=True)
class IdleFigures:
    rps_without: float | None
    rps_with: float | None
    ratio: float | None  # req/s with ÷ without
    front_without: float | None  # KiB, median
    front_with: float | None
    held: int | None  # connections held at the end of the run (fewest over the repeats)
    kib_per_connection: float | None


def idle_figures(without: Sequence[Point], held: Sequence[Point]) -> IdleFigures:
    """The idle-connections figures of one server from its ok points."""
    rps_without = _median([p.rps for p in without])
    rps_with = _median([p.rps for p in held])
    front_without = _median([p.rss_front_kib for p in without])
    front_with = _median([p.rss_front_kib for p in held])
    counts = [p.idle["window"]["open_at_end"] for p in held if p.idle]
    count = min(counts) if counts else None
    per_conn = None
    if front_with is not None and front_without is not None and count:
        per_conn = (front_with - front_without) / count
    return IdleFigures(
        rps_without=rps_without,
        rps_with=rps_with,
        ratio=rps_with / rps_without if rps_with is not None and rps_without else None,
        front_without=front_without,
        front_with=front_with,
        held=count,
        kib_per_connection=per_conn,
    )


def startup_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, STARTUP)
    header = ["server", "app", "median ms", "fastest ms", "slowest ms", "ok/runs", "note"]
    rows = []
    for (server_name, _), group in groups.items():
        times = [p.startup_s * 1e3 for p in _ok(group) if p.startup_s is not None]
        row = [server_name, _first_app(group), _fmt(_median(times), 0)]
        row += [_fmt(min(times), 0) if times else "-", _fmt(max(times), 0) if times else "-"]
        row += [f"{len(_ok(group))}/{len(group)}", group_notes(group)]
        rows.append(row)
    return [
        "## startup: process start to the first 200",
        "",
        "Per launch: from just before the harness starts the server (`Popen`, through "
        f"`taskset` when pinned: {meta['pinning']}) to the first `GET /` answered 200 on the "
        "hello app, 1 worker. The harness reads the port from the server's log line when the "
        f"server prints one (else it picked a free port) and tries every {STARTUP_POLL_S * 1e3:g} "
        "ms. One launch per repeat, servers interleaved. swserve's checkout is byte-compiled "
        "before the run, as pip compiles the anchors it installs.",
        "",
        *_table(header, rows, left=2),
    ]


def mixed_fast_p99(points: list[Point]) -> dict[tuple[str, str], float | None]:
    """Median fast-request p99 per (server, rate), and the ideal's per ("ideal", rate)."""
    fast: dict[tuple[str, str], float | None] = {}
    for (server_name, variant), group in _groups(points, OPENLOOP).items():
        ok = [p for p in group if p.status == "ok" and p.openloop]
        fast[server_name, variant] = _kind_median(ok, "fast", "p99_ms")
        ideal = next((p.openloop["ideal"]["fast"]["p99_ms"] for p in group if p.openloop), None)
        if ideal is not None:
            fast.setdefault(("ideal", variant), ideal)
    return fast


# ---------------------------------------------------------------------------------------------
# The issue's bars, evaluated from one run's points
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    row: str  # the issue's row
    check: str  # what is compared
    value: float | None  # the measured ratio or figure; None: not measured in this run
    limit: float  # the bar
    at_least: bool  # True: value >= limit holds; False: value <= limit holds
    unit: str = "x"  # "x" for a ratio, else the figure's unit
    pinning: str = ""
    note: str = ""
    indicative: bool = False  # the issue gives it as "≈", or it is not the bar's test: not judged
    # ratio bars: the anchor's CPU µs per request ÷ the subject's (above 1: the subject is
    # cheaper), the figure that stays put when req/s swings with the machine's noise
    cpu_ratio: float | None = None

    @property
    def holds(self) -> bool | None:
        if self.value is None or self.indicative:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def cells(self) -> list[str]:
        sign = "≥" if self.at_least else "≤"
        value = "not measured" if self.value is None else f"{self.value:,.2f}{self.unit}"
        limit = f"{'≈' if self.indicative else sign} {round(self.limit, 2):g}{self.unit}"
        holds = {True: "**yes**", False: "**no**", None: "-"}[self.holds]
        if self.indicative and self.value is not None:
            holds = "(indicative)"
        cpu = f"{self.cpu_ratio:.2f}x" if self.cpu_ratio is not None else "-"
        return [self.row, self.check, value, limit, holds, cpu, self.pinning or "-", self.note]


# (row, scenario, subject, anchor, bar, indicative): req/s of the subject ÷ the anchor's, same
# run; indicative: the issue gives it as "≈" (shown, not judged)
RATIO_BARS: Final = (
    ("ASGI hello, base mode", "asgi-hello", "swserve-base", "granian", 1.0, False),
    ("ASGI hello, base mode", "asgi-hello", "swserve-base", "uvicorn", 2.0, True),
    ("WSGI hello, base mode", "wsgi-hello", "swserve-base", "granian", 1.0, False),
    ("WSGI hello, process mode", "wsgi-hello", "swserve", "gunicorn-gthread", 5.0, False),
    ("WSGI hello, process mode", "wsgi-hello", "swserve", "granian", 0.8, False),
    ("ASGI hello, process mode", "asgi-hello", "swserve", "uvicorn", 1.0, False),
    ("Flask app (JSON view), process mode", "flask-json", "swserve", "granian", 1.0, False),
    (
        "FastAPI app (JSON endpoint), base mode",
        "fastapi-json",
        "swserve-base",
        "granian",
        1.0,
        False,
    ),
    # the issue names no mode here: both are checked
    *(
        ("64 KiB response and 1 MiB POST echo", scenario, subject, anchor, 1.0, False)
        for scenario, anchors in (
            ("wsgi-64k", ("gunicorn-sync", "gunicorn-gthread")),
            ("asgi-64k", ("uvicorn",)),
            ("wsgi-echo-1m", ("gunicorn-sync", "gunicorn-gthread")),
            ("asgi-echo-1m", ("uvicorn",)),
        )
        for subject in ("swserve", "swserve-base")
        for anchor in anchors
    ),
)


def _pinnings(points: Sequence[Point]) -> str:
    return ", ".join(sorted({p.pinning for p in points if p.status == "ok" and p.pinning}))


def evaluate_bars(summaries: list[Summary], points: list[Point]) -> list[Bar]:
    """Every bar of the issue, from this run's points (None where a figure is missing)."""
    by_key = {(s.scenario, s.server): s for s in summaries}
    bars: list[Bar] = []
    for row, scenario, subject, anchor, limit, indicative in RATIO_BARS:
        mine, theirs = by_key.get((scenario, subject)), by_key.get((scenario, anchor))
        value = cpu_ratio = None
        if mine is not None and theirs is not None and mine.rps is not None and theirs.rps:
            value = mine.rps / theirs.rps
        cpus = (mine.cpu_us_per_req, theirs.cpu_us_per_req) if mine and theirs else (None, None)
        if cpus[0] and cpus[1] is not None:
            cpu_ratio = cpus[1] / cpus[0]
        used = [p for p in points if p.scenario == scenario and p.server in {subject, anchor}]
        bars.append(
            Bar(
                row,
                f"{scenario}: {subject} ÷ {anchor} req/s",
                value,
                limit,
                at_least=True,
                pinning=_pinnings(used),
                indicative=indicative,
                cpu_ratio=cpu_ratio,
            )
        )
    bars += _mixed_issue_bars(points)
    bars += _idle_issue_bars(points)
    bars += _startup_issue_bars(points)
    return bars


def _mixed_issue_bars(points: list[Point]) -> list[Bar]:
    row = "mixed latency at 50 % and 80 % of capacity"
    fast = mixed_fast_p99(points)
    used = [p for p in points if SCENARIOS_BY_NAME[p.scenario].kind == OPENLOOP]
    pinning = _pinnings(used)
    rates = sorted({v for _, v in fast}, key=variant_rate) or [
        rate_variant(r) for r in OPENLOOP_RATES
    ]
    bars = []
    for subject in ("swserve", "swserve-base"):
        if subject == "swserve-base" and not any(p.server == subject for p in used):
            continue
        # The issue's mixed bar is for `swserve --workers 2`, the default process mode: its
        # dispatch-to-idle is what the scenario measures.  Base mode binds each keep-alive
        # connection to the worker that accepted it, as gunicorn and granian do (docs/modes.md),
        # so its figures are shown for the comparison, not judged.
        base = subject == "swserve-base"
        note = "base mode: connections stay with one worker (not the bar's test)" if base else ""
        for rate in rates:
            mine, ideal = fast.get((subject, rate)), fast.get(("ideal", rate))
            value = mine / ideal if mine is not None and ideal else None
            check = f"mixed {rate}: {subject} fast p99 ÷ the ideal dispatcher's"
            bars.append(
                Bar(
                    row,
                    check,
                    value,
                    MIXED_MAX_IDEAL_RATIO,
                    False,
                    pinning=pinning,
                    note=note,
                    indicative=base,
                )
            )
        lowest = rates[0]
        for anchor in MIXED_ANCHORS:
            mine, theirs = fast.get((subject, lowest)), fast.get((anchor, lowest))
            value = mine / theirs if mine is not None and theirs else None
            check = f"mixed {lowest}: {subject} fast p99 ÷ {anchor}'s"
            bars.append(
                Bar(
                    row,
                    check,
                    value,
                    MIXED_MAX_ANCHOR_RATIO,
                    False,
                    pinning=pinning,
                    note=note,
                    indicative=base,
                )
            )
    return bars


def _idle_issue_bars(points: list[Point]) -> list[Bar]:
    row = f"idle connections: {IDLE_CONNECTIONS:,} keep-alive, then hello at c=64"
    groups = _groups(points, IDLE)
    bars = []
    for subject in ("swserve", "swserve-base"):
        without = _ok(groups.get((subject, WITHOUT), []))
        held = _ok(groups.get((subject, WITH), []))
        pinning = _pinnings([*without, *held])
        figures = idle_figures(without, held)
        count = figures.held
        limit_kib = IDLE_RSS_BASE_KIB + IDLE_RSS_PER_CONN_KIB * (count or IDLE_CONNECTIONS)
        note = ""
        if count is not None and count < IDLE_CONNECTIONS:
            note = f"only {count:,} of {IDLE_CONNECTIONS:,} held at the end: not the bar's test"
        rss = figures.front_with / 1024 if figures.front_with is not None and count else None
        bars.append(
            Bar(
                row,
                f"{subject}: RSS of master + reactors with them (≤ 40 MiB + 8 KiB x "
                f"{count or IDLE_CONNECTIONS:,})",
                rss if not note else None,
                limit_kib / 1024,
                at_least=False,
                unit=" MiB",
                pinning=pinning,
                note=note
                or (
                    f"{figures.kib_per_connection:.1f} KiB per connection over the run without"
                    if figures.kib_per_connection is not None
                    else ""
                ),
            )
        )
        cpu_without = _median([p.cpu_us_per_req for p in without])
        cpu_with = _median([p.cpu_us_per_req for p in held])
        bars.append(
            Bar(
                row,
                f"{subject}: req/s with them ÷ without",
                figures.ratio if not note else None,
                IDLE_MIN_RATIO,
                at_least=True,
                pinning=pinning,
                note=note,
                cpu_ratio=cpu_without / cpu_with if cpu_without and cpu_with else None,
            )
        )
    return bars


def _startup_issue_bars(points: list[Point]) -> list[Bar]:
    bars = []
    for subject in ("swserve", "swserve-base"):
        group = _ok(_groups(points, STARTUP).get((subject, ""), []))
        median = _median([p.startup_s for p in group])
        bars.append(
            Bar(
                "start-up: process start to first 200, hello app",
                f"{subject}: median of {len(group)} launches",
                median,
                STARTUP_MAX_S,
                at_least=False,
                unit=" s",
                pinning=_pinnings(group),
            )
        )
    return bars


def bars_section(bars: list[Bar]) -> list[str]:
    held = sum(1 for b in bars if b.holds)
    judged = sum(1 for b in bars if b.holds is not None)
    measured = [b for b in bars if b.value is not None]
    missing = [b for b in bars if b.value is None]
    header = [
        "bar row (issue #6)",
        "check",
        "measured",
        "bar",
        "holds",
        "by CPU/req",
        "pinning",
        "note",
    ]
    lines = [
        "## Bars of the speed issue",
        "",
        f"{held} of {judged} checks hold; {len(missing)} not measured in this run. Ratios are "
        "of medians in this run (1 worker unless said; mixed: 2). *by CPU/req*: for the req/s "
        "ratios, the anchor's CPU µs per request ÷ swserve's (above 1: swserve spends less per "
        "request), steadier than req/s on a shared machine; shown, not judged. "
        "*pinning*: where the server "
        "and the load generator ran (`server=cpu1 wrk=cpu0`: `taskset`, server on CPU 1, wrk "
        "and the other clients on CPU 0; `none`: unpinned).",
    ]
    if measured:
        lines += ["", *_table(header, [b.cells() for b in measured], left=2)]
    if missing:
        lines += ["", "Not measured in this run (`--suite full` measures every one):", ""]
        lines += [f"- {b.row}: {b.check}" for b in missing]
    return lines


def write_results(
    output_dir: Path, meta: dict[str, Any], summaries: list[Summary], points: list[Point]
) -> tuple[Path, str, Path | None]:
    """Write the JSON, draw the chart next to it, and write the markdown report.

    Returns:
        The JSON's path, the report, and the PNG's path (None if none could be drawn).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{meta['label']}.json"
    payload = {
        "meta": meta,
        "summary": [asdict(s) for s in summaries],
        "points": [asdict(p) for p in points],
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    png_path = json_path.with_suffix(".png")
    chart_ok = any(s.rps for s in summaries) and render_chart(json_path, png_path)
    report = markdown(summaries, points, meta, chart=png_path.name if chart_ok else "")
    json_path.with_suffix(".md").write_text(report)
    return json_path, report, png_path if chart_ok else None


CHART_SCRIPT: Final = HERE / "chart.py"
CHART_TIMEOUT_S: Final = 120


def render_chart(json_path: Path, png_path: Path) -> bool:
    """Draw the PNG with chart.py under the anchors venv (it has matplotlib); False on failure.

    A chart that cannot be drawn (no venv, matplotlib missing with ``--no-install``) costs the
    run nothing but the picture: the reason is logged.
    """
    python = VENV_BIN / "python"
    if not python.exists():
        log(f"no chart: {python} not found")
        return False
    try:
        result = subprocess.run(
            [str(python), str(CHART_SCRIPT), str(json_path), str(png_path)],
            capture_output=True,
            text=True,
            timeout=CHART_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log(f"no chart: chart.py did not finish within {CHART_TIMEOUT_S} s")
        return False
    if result.returncode != 0:
        log(f"no chart: chart.py failed: {tail(result.stderr or result.stdout, 3)}")
        return False
    return True


DOCS_PAGE: Final = REPO_ROOT / "docs" / "benchmarks.md"
DOCS_CHART: Final = REPO_ROOT / "docs" / "benchmarks.png"
SNAPSHOT_BEGIN: Final = "<!-- snapshot: begin (written by loadtests/run.py --write-docs) -->"
SNAPSHOT_END: Final = "<!-- snapshot: end -->"


def write_docs(
    meta: dict[str, Any], summaries: list[Summary], points: list[Point], png: Path | None
) -> None:
    """Replace the snapshot in docs/benchmarks.md, between its markers, and docs/benchmarks.png.

    The prose around the markers is the maintainers' and is kept as it is.

    Raises:
        SystemExit: the page has no snapshot markers.
    """
    page = DOCS_PAGE.read_text()
    if SNAPSHOT_BEGIN not in page or SNAPSHOT_END not in page:
        raise SystemExit(
            f"{DOCS_PAGE} has no snapshot markers ({SNAPSHOT_BEGIN} ... {SNAPSHOT_END})"
        )
    before, rest = page.split(SNAPSHOT_BEGIN, 1)
    after = rest.split(SNAPSHOT_END, 1)[1]
    if png is not None:
        shutil.copyfile(png, DOCS_CHART)
    report = markdown(summaries, points, meta, chart=DOCS_CHART.name if png else "", for_docs=True)
    report = re.sub(r"^(#+) ", r"\1# ", report, flags=re.M)  # under the snapshot's heading
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    snapshot = [
        SNAPSHOT_BEGIN,
        "",
        f"## Snapshot: {meta['started']}",
        "",
        f"Produced by `{meta['command']}`.",
        "",
        f"Machine: {meta['cpus']} CPUs (affinity {meta['affinity']}), {meta['platform']}, "
        f"Python {meta['python']}. Pinning: {meta['pinning']}. Versions: {versions}.",
        "",
        report.rstrip(),
        "",
        SNAPSHOT_END,
    ]
    DOCS_PAGE.write_text(before + "\n".join(snapshot) + after)
    log(f"wrote {DOCS_PAGE}" + (f" and {DOCS_CHART}" if png else " (no chart)"))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _names(table: dict[str, Any], what: str) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in table]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(table)}"
            )
        return names

    return parse


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _rates(value: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(rate) for rate in value.split(",") if rate.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from exc
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a list of positive rates")
    return rates


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark swserve against uvicorn, gunicorn and granian with wrk.",
        epilog="example: python3 loadtests/run.py --suite quick --servers swserve,granian",
    )
    add = parser.add_argument
    add("--suite", choices=SUITES, default="quick", help="quick (default), full or reload")
    add(
        "--scenario",
        type=_names(SCENARIOS_BY_NAME, "scenario"),
        help="only these scenarios (comma-separated; see --list), with the suite's defaults",
    )
    add(
        "--servers",
        type=_names(SERVERS_BY_NAME, "server"),
        help=f"comma-separated subset of {','.join(SERVERS_BY_NAME)} (default: all; "
        "slowloris: swserve, gunicorn-sync, gunicorn-gthread, uvicorn)",
    )
    add(
        "--duration",
        type=_positive,
        help="seconds per point (default: quick 5, full 8, reload and mixed 20, slowloris 10)",
    )
    add(
        "--connections",
        type=_positive,
        help="wrk connections (default 64; slowloris 32); mixed: openloop.py's keep-alive pool"
        " (default 32)",
    )
    add(
        "--workers",
        type=_positive,
        help="server worker processes (default 1; reload and mixed: 2)",
    )
    add(
        "--repeat",
        type=_positive,
        help="runs per point (default: quick 2, full 3, reload, mixed and slowloris 1)",
    )
    add(
        "--rates",
        type=_rates,
        default=OPENLOOP_RATES,
        help="mixed: open-loop arrival rates in req/s, comma-separated (default 170,270)",
    )
    add("--seed", type=int, default=OPENLOOP_SEED, help="mixed: schedule seed (default 1)")
    add("--warmup", type=int, default=1, help="unmeasured wrk seconds before each run (1)")
    add("--ready-timeout", type=float, default=READY_TIMEOUT_S, help="seconds (default 30)")
    add("--no-install", action="store_true", help="use the anchors venv as it is, if present")
    add("--no-pin", action="store_true", help="do not pin the server and wrk with taskset")
    add("--output-dir", type=Path, default=RESULTS_DIR, help="default: loadtests/results")
    add(
        "--write-docs",
        action="store_true",
        help="also write the snapshot in docs/benchmarks.md and docs/benchmarks.png",
    )
    add(
        "--from-json",
        type=Path,
        metavar="RESULT.json",
        help="measure nothing: write the report and chart of a saved run again (from its "
        "JSON in results/), and with --write-docs its snapshot",
    )
    add("--list", action="store_true", help="list the servers and scenarios, then exit")
    return parser.parse_args(argv)


def held_connections(scenario: Scenario) -> int:
    """How many connections a client of ``scenario`` holds open beside the load (or 0)."""
    return {SLOWLORIS: SLOWLORIS_CONNECTIONS, IDLE: IDLE_CONNECTIONS}.get(scenario.kind, 0)


def raise_nofile_limit(needed: int) -> dict[str, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return both, before/after.

    Warns when the result leaves fewer than ``needed`` + 256 fds (the client's connections and
    the server's, plus wrk's and the processes' own).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    result = {"soft_before": soft, "hard": hard, "soft": soft}
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit
            log(f"could not raise RLIMIT_NOFILE from {soft} to {hard}: {exc}")
        result["soft"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if 0 <= result["soft"] < needed + 256:
        log(
            f"warning: RLIMIT_NOFILE is {result['soft']}: a client holding {needed} connections, "
            "or the server, may run out of fds (raise the hard limit: ulimit -Hn)"
        )
    return result


def list_tables() -> None:
    print("servers:")
    for server in SERVERS:
        print(f"  {server.name:17} {'/'.join(sorted(server.interfaces))}")
    print("scenarios:")
    for scenario in SCENARIOS:
        suites = ",".join(sorted(scenario.suites)) or "--scenario only"
        print(f"  {scenario.name:16} {suites:16} {scenario.kind:9} {scenario.summary}")


def load_results(json_path: Path) -> tuple[dict[str, Any], list[Point]]:
    """A run's meta and points from its JSON (fields a newer harness added get defaults).

    Raises:
        SystemExit: the file is missing or is not a results file.
    """
    try:
        payload = json.loads(json_path.read_text())
        known = {f.name for f in fields(Point)}
        points = [Point(**{k: v for k, v in p.items() if k in known}) for p in payload["points"]]
        meta: dict[str, Any] = payload["meta"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{json_path}: not a loadtests result file ({exc})") from None
    meta.setdefault("command", shlex.join(["python3", "loadtests/run.py", *meta["argv"][1:]]))
    return meta, points


def report_again(args: argparse.Namespace) -> int:
    """--from-json: the report, the chart (and with --write-docs the snapshot) of a saved run."""
    json_path: Path = args.from_json
    meta, points = load_results(json_path)
    unknown = sorted({p.scenario for p in points} - set(SCENARIOS_BY_NAME))
    if unknown:
        raise SystemExit(f"{json_path}: unknown scenarios {', '.join(unknown)}")
    summaries = summarise(points)
    png_path = json_path.with_suffix(".png")
    png = png_path if any(s.rps for s in summaries) and render_chart(json_path, png_path) else None
    report = markdown(summaries, points, meta, chart=png.name if png else "")
    json_path.with_suffix(".md").write_text(report)
    print(report)
    log(f"wrote {json_path.with_suffix('.md')}" + (f" and {png}" if png else ""))
    if args.write_docs and meta.get("interrupted"):
        log(f"not writing {DOCS_PAGE}: the run was interrupted")
    elif args.write_docs:
        write_docs(meta, summaries, points, png)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_tables()
        return 0
    if args.from_json:
        return report_again(args)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    suite = SUITES[args.suite]
    if args.scenario:
        scenarios = [SCENARIOS_BY_NAME[name] for name in args.scenario]
    else:
        scenarios = [s for s in SCENARIOS if args.suite in s.suites]
    servers = [SERVERS_BY_NAME[name] for name in args.servers or SERVERS_BY_NAME]
    if not any(scenario.app_for(server) for scenario in scenarios for server in servers):
        raise SystemExit("nothing to run: no selected server serves the selected scenarios")

    signal.signal(signal.SIGTERM, _raise_stop_requested)
    signal.signal(signal.SIGHUP, _raise_stop_requested)
    try:
        swserve_missing = ensure_venv(
            no_install=args.no_install, with_swserve=any(server.subject for server in servers)
        )
    except (KeyboardInterrupt, StopRequestedError):
        return 130
    compile_checkout()
    pinning = Pinning.choose(enabled=not args.no_pin)
    repeat = args.repeat or suite.repeat
    # slowloris and idle-connections: the client (a child of ours) holds 500 or 10,000 sockets,
    # and the servers we start inherit our limit too; raise the soft limit to the hard one, as
    # a systemd LimitNOFILE would
    held = [held_connections(s) for s in scenarios if held_connections(s)]
    nofile = raise_nofile_limit(max(held)) if held else {}
    meta: dict[str, Any] = {
        "label": "+".join(args.scenario) if args.scenario else args.suite,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": sys.argv,
        "command": shlex.join(["python3", "loadtests/run.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "pinning": pinning.describe(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # of the wrk scenarios; reload, mixed and slowloris record their own in each point
        "duration_s": args.duration or suite.duration_s,
        "connections": args.connections or suite.connections,
        "workers": args.workers or 1,
        "repeat": repeat,
        "warmup_s": args.warmup,
        "hup_interval_s": HUP_INTERVAL_S,
        "max_requests": MAX_REQUESTS,
        "rates": list(args.rates),
        "seed": args.seed,
        "slowloris_connections": SLOWLORIS_CONNECTIONS,
        "slowloris_soak_s": SLOWLORIS_SOAK_S,
        "nofile": nofile,
        "versions": installed_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="swserve-loadtest-") as workdir:
        settings = Settings(
            suite=suite,
            duration_s=args.duration,
            connections=args.connections,
            workers=args.workers,
            warmup_s=args.warmup,
            ready_timeout_s=args.ready_timeout,
            pinning=pinning,
            workdir=Path(workdir),
            swserve_missing=swserve_missing,
            rates=args.rates,
            seed=args.seed,
        )
        plan = make_plan(
            scenarios, servers, settings, args.repeat, servers_given=args.servers is not None
        )
        points, meta["interrupted"] = run_plan(plan, settings)
    summaries = summarise(points)
    json_path, report, png = write_results(args.output_dir, meta, summaries, points)
    print(report)
    log(f"wrote {json_path}, {json_path.with_suffix('.md')}" + (f" and {png}" if png else ""))
    if args.write_docs and meta["interrupted"]:
        log(f"not writing {DOCS_PAGE}: the run was interrupted")
    elif args.write_docs:
        write_docs(meta, summaries, points, png)
    return 130 if meta["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
