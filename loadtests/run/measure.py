"""One measurement point: start a server, drive it, read its tree's CPU."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, Final

from loadtests.run.anchors import server_env
from loadtests.run.common import (
    HOST,
    POLL_INTERVAL_S,
    REPO_ROOT,
    VENV_BIN,
    WRK_SLACK_S,
    Point,
    PointError,
    tail,
)
from loadtests.run.held import IdleRun, SlowlorisRun, slowloris_window, tree_fds, tree_memory
from loadtests.run.procs import (
    free_port,
    process_description,
    run_wrk,
    session,
    stop_group,
    tree_cpu,
    tree_ticks,
    wait_ready,
)
from loadtests.run.scenarios import (
    CHURN,
    FD_TROUBLE_RE,
    HELD,
    IDLE,
    OPENLOOP,
    OPENLOOP_SCRIPT,
    OPENLOOP_TIMEOUT_S,
    OPENLOOP_WARMUP_RATE,
    RECYCLE,
    SLOWLORIS,
    SLOWLORIS_SOAK_S,
    STARTUP,
    STARTUP_POLL_S,
    WITH,
    Scenario,
)
from loadtests.run.servers import Server
from loadtests.run.settings import Settings, variant_rate


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
