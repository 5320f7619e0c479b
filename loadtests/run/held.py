"""Connections held open during a point (slowloris, idle), the tree's memory and fds."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from loadtests.run.common import (
    CLI_REJECTED_RE,
    HOST,
    STOP_GRACE_S,
    WRK_SLACK_S,
    Point,
    PointError,
    log,
    tail,
)
from loadtests.run.procs import process_description, read_stats, session, tree_cpu
from loadtests.run.scenarios import (
    IDLE_CONNECTIONS,
    IDLE_RAMP_TIMEOUT_S,
    IDLE_SCRIPT,
    SLOWLORIS_CONNECTIONS,
    SLOWLORIS_RAMP_TIMEOUT_S,
    SLOWLORIS_SCRIPT,
    SLOWLORIS_SOAK_S,
)
from loadtests.run.servers import Server
from loadtests.run.settings import Settings


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
