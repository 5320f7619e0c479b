"""/proc CPU accounting, process groups, CPU pinning, readiness and wrk."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from loadtests.run.common import (
    HOST,
    POLL_INTERVAL_S,
    PROBE_TIMEOUT_S,
    STOP_GRACE_S,
    WRK_SLACK_S,
    PointError,
    StopRequestedError,
    WrkResult,
    tail,
)

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


def process_description(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError as exc:
        return f"pid {pid}: {exc}"
    return f"pid {pid}: {cmdline.decode(errors='replace')}"
