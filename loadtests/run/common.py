"""Paths, time limits, and what one measured point holds."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parents[1]  # loadtests/
REPO_ROOT: Final = HERE.parent
VENV_DIR: Final = HERE / ".venv-anchors"
VENV_BIN: Final = VENV_DIR / "bin"
INSTALL_STAMP: Final = VENV_DIR / ".anchors-installed"
RESULTS_DIR: Final = HERE / "results"
HOST: Final = "127.0.0.1"

# matplotlib draws the chart (chart.py runs under this venv's python: loadtests.run stays stdlib-only)
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
