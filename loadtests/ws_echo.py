#!/usr/bin/env python3
"""WebSocket echo: messages/s, round trips and the server's CPU per message, swserve vs anchors.

Two scenarios on ``apps/ws_echo.py`` (every text/bytes message echoed back):

* ``small``: text messages of 32, 64, 96 and 128 bytes (in turn), over 256 sessions;
* ``64k``: binary messages of 64 KiB over 16 sessions.

Servers: swserve (``--mode process``: the reactor frames, the worker runs the app, whole messages
cross the IPC), ``swserve-base`` (``--mode base``), uvicorn (``--ws websockets-sansio`` when the
installed uvicorn has it, else ``websockets``) and granian (``--interface asgi``, its WebSockets
on), each with one worker, started and stopped by ``loadtests.run``'s ``served`` (anchors venv,
readiness by a real GET, the process group stopped whatever happens), the server pinned to one
CPU and the load to the other (``run.Pinning``).

The load is ``wsclient.py echo`` in ``--clients`` processes (2) on the load CPU, each holding its
share of the sessions, closed loop (one message in flight per session); frames are masked once
before the run, so the client's cost per message is small (its CPU is reported: "client cores"
near 1.0 would mean the client, not the server, was the limit). The clients connect, then all
start at the same CLOCK_MONOTONIC instant; after ``--warmup`` seconds the measured window of
``--duration`` seconds begins, and the server tree's CPU time (``run.tree_ticks``: every process,
reaped children included) is sampled at its two ends.

A *message* below is one round trip: a message from the client and its echo. The table gives
messages/s, p50/p99 round trip (ms), the server's CPU µs per message, server and client cores,
and each figure's ratio to uvicorn's; the issue's bars (#12): base ≥ 1.0x uvicorn, process
≥ 0.8x uvicorn (messages/s) in each scenario.

Example:
    flock /tmp/swserve-bench.lock python3 -m loadtests.ws_echo --duration 5 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from loadtests import run
from loadtests.wsclient import percentile

APP: Final = "loadtests.apps.ws_echo:app"
SERVERS: Final = ("swserve", "swserve-base", "uvicorn", "granian")
ANCHOR: Final = "uvicorn"
CLIENT_SLACK_S: Final = 15.0  # after the window: the clients' drain and close, at most
RAMP_TIMEOUT_S: Final = 60.0
# the bars: messages/s of each swserve mode ÷ uvicorn's, in every scenario
BARS: Final = {"swserve-base": 1.0, "swserve": 0.8}
STARVED_CORES: Final = 0.8  # a pinned one-worker server below this was not CPU-bound


@dataclass(frozen=True)
class EchoScenario:
    name: str
    connections: int
    sizes: tuple[int, ...]
    binary: bool
    summary: str


SCENARIOS: Final = {
    s.name: s
    for s in (
        EchoScenario("small", 256, (32, 64, 96, 128), False, "32-128 B text, 256 sessions"),
        EchoScenario("64k", 16, (65536,), True, "64 KiB binary, 16 sessions"),
    )
}


@dataclass
class EchoPoint:
    scenario: str
    server: str
    repeat: int
    status: str = "ok"
    reason: str = ""
    messages: int = 0
    messages_per_s: float | None = None
    mib_per_s: float | None = None  # echoed payload, one way
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us_per_message: float | None = None
    user_us_per_message: float | None = None
    server_cores: float | None = None
    client_cores: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    # how busy each CPU was in the window, by anyone: the server's CPU near 1.0 with the server
    # well below it means other processes took the rest
    cpus_busy: dict[str, float] = field(default_factory=dict)
    server_run: dict[str, Any] = field(default_factory=dict)  # run.Point: argv, log, exit ...
    clients: list[dict[str, Any]] = field(default_factory=list)


def uvicorn_ws_flag() -> str:
    """``--ws websockets-sansio`` if the anchors' uvicorn has it (0.35+), else ``websockets``."""
    out = subprocess.run(
        [str(run.VENV_BIN / "uvicorn"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return "--ws websockets-sansio" if "websockets-sansio" in out else "--ws websockets"


def run_scenario(name: str, uvicorn_ws: str) -> run.Scenario:
    """The ``run.Scenario`` that ``run.served`` starts a server for: the app and server flags."""
    return run.Scenario(
        name=f"ws-{name}",
        interface="asgi",
        app=APP,
        suites=frozenset(),
        summary=SCENARIOS[name].summary,
        # granian's ASGI template turns WebSockets off (--no-ws): the last flag wins
        server_args={"uvicorn": uvicorn_ws, "granian": "--ws"},
    )


def cpu_jiffies() -> dict[int, tuple[int, int]]:
    """Per CPU, from /proc/stat: (busy, total) jiffies since boot (busy: all but idle, iowait)."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            numbers = [int(v) for v in values[:8]]
            times[int(name[3:])] = (sum(numbers) - numbers[3] - numbers[4], sum(numbers))
    return times


def busy_share(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[str, float]:
    """How busy each CPU was between two ``cpu_jiffies()`` (0..1), whoever kept it busy."""
    shares = {}
    for cpu, (busy, total) in after.items():
        busy0, total0 = before.get(cpu, (0, 0))
        if total > total0:
            shares[f"cpu{cpu}"] = round((busy - busy0) / (total - total0), 3)
    return shares


def read_line(proc: subprocess.Popen[bytes], deadline: float, what: str) -> str:
    """One line of ``proc``'s stdout, by ``deadline`` (time.monotonic()).

    Raises:
        run.PointError: it exited or said nothing in time.
    """
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise run.PointError(f"the client said nothing {what} in time")
        readable, _, _ = select.select([proc.stdout], [], [], left)
        if readable:
            chunk = os.read(proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise run.PointError(f"the client exited {what} (code {proc.poll()})")
            line += chunk
    return line.decode(errors="replace").strip()


def client_argv(
    command: str, port: int, connections: int, settings: run.Settings, extra: Sequence[str] = ()
) -> list[str]:
    python = run.VENV_BIN / "python"  # the anchors venv has uvloop (uvicorn[standard])
    argv = [*settings.pinning.load_prefix(), str(python), "-m", "loadtests.wsclient", command]
    return [*argv, "--port", str(port), "--connections", str(connections), *extra]


def start_clients(
    stack: contextlib.ExitStack,
    command: str,
    port: int,
    total: int,
    processes: int,
    settings: run.Settings,
    extra: Sequence[str] = (),
) -> list[subprocess.Popen[bytes]]:
    """``processes`` wsclient processes sharing ``total`` sessions; each has said ``ready``."""
    shares = [total // processes + (i < total % processes) for i in range(processes)]
    procs = []
    for index, share in enumerate(shares):
        err = stack.enter_context((settings.workdir / f"client-{port}-{index}.err").open("wb"))
        procs.append(
            stack.enter_context(
                run.session(
                    client_argv(command, port, share, settings, extra),
                    cwd=run.REPO_ROOT,
                    env=run.server_env(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
            )
        )
    deadline = time.monotonic() + RAMP_TIMEOUT_S
    for proc, share in zip(procs, shares, strict=True):
        ready = read_line(proc, deadline, "before it was ready").split()
        if ready[:1] != ["ready"] or int(ready[1]) != share:
            raise run.PointError(f"the client opened {ready[1:]} (open, failed) of {share}")
    return procs


def measure(
    server: run.Server, name: str, repeat: int, settings: run.Settings, args: argparse.Namespace
) -> EchoPoint:
    scenario = SCENARIOS[name]
    point = EchoPoint(name, server.name, repeat)
    base = run.Point(
        scenario=f"ws-{name}",
        server=server.name,
        repeat=repeat,
        pinning=settings.pinning.describe(),
        connections=scenario.connections,
        duration_s=args.duration,
        workers=1,
    )
    extra = ["--sizes", ",".join(map(str, scenario.sizes)), *(["--binary"] * scenario.binary)]
    cpu_before = user_before = cpu_after = user_after = 0.0
    try:
        with (
            run.served(server, run_scenario(name, args.uvicorn_ws), settings, base) as proc,
            contextlib.ExitStack() as stack,
        ):
            assert base.port is not None
            clients = start_clients(
                stack, "echo", base.port, scenario.connections, args.clients, settings, extra
            )
            start = time.monotonic() + args.warmup
            end = start + args.duration
            for client in clients:
                assert client.stdin is not None
                client.stdin.write(f"go {start} {end}\n".encode())
                client.stdin.flush()
            base.loadavg_1m = os.getloadavg()[0]
            time.sleep(max(0.0, start - time.monotonic()))
            cpu_before, user_before, _ = run.tree_ticks(proc.pid)
            jiffies = cpu_jiffies()
            time.sleep(max(0.0, end - time.monotonic()))
            cpu_after, user_after, base.tree_processes = run.tree_ticks(proc.pid)
            point.cpus_busy = busy_share(jiffies, cpu_jiffies())
            deadline = end + CLIENT_SLACK_S
            point.clients = [json.loads(read_line(c, deadline, "after the run")) for c in clients]
    except run.PointError as exc:
        point.status, point.reason = exc.status, exc.reason
    point.server_run = asdict(base)
    if point.status != "ok":
        return point
    summarise(point, cpu_after - cpu_before, user_after - user_before, args.duration)
    return point


def summarise(point: EchoPoint, cpu_s: float, user_s: float, duration_s: float) -> None:
    counts: Counter[str] = Counter()
    histogram: Counter[int] = Counter()
    client_cpu = 0.0
    for client in point.clients:
        counts.update(client["counts"])
        histogram.update({int(k): v for k, v in client["histogram"].items()})
        client_cpu += client["client_cpu_s"]
        if client["open"] != client["connections"]:
            counts["sessions not opened"] += client["connections"] - client["open"]
    point.messages = counts["echoed"]
    point.errors = {
        k: v for k, v in counts.items() if k not in {"sent", "echoed", "echoed_bytes", "done"}
    }
    if not point.messages:
        point.status, point.reason = "failed", f"no message echoed: {dict(counts)}"
        return
    point.messages_per_s = round(point.messages / duration_s, 1)
    point.mib_per_s = round(counts["echoed_bytes"] / duration_s / 2**20, 2)
    point.p50_ms = percentile(histogram, 0.50)
    point.p99_ms = percentile(histogram, 0.99)
    point.cpu_us_per_message = round(cpu_s * 1e6 / point.messages, 2)
    point.user_us_per_message = round(user_s * 1e6 / point.messages, 2)
    point.server_cores = round(cpu_s / duration_s, 3)
    point.client_cores = round(client_cpu / duration_s, 3)


def _median(values: Sequence[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return present[len(present) // 2] if present else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(points: list[EchoPoint], meta: dict[str, Any]) -> str:
    """The markdown summary: one table per scenario (medians over repeats), then the bars."""
    lines = [f"# WebSocket echo ({meta['started']})", ""]
    lines += [f"pinning: {meta['pinning']}; duration {meta['duration_s']} s per point, "]
    lines[-1] += f"{meta['repeat']} repeat(s); versions: {meta['versions']}"
    bars: list[str] = []
    keys = (
        *("messages_per_s", "p50_ms", "p99_ms", "cpu_us_per_message", "user_us_per_message"),
        *("server_cores", "client_cores", "mib_per_s"),
    )
    for name in meta["scenarios"]:
        lines += ["", f"## {name}: {SCENARIOS[name].summary}", ""]
        lines += [
            "| server | msg/s | p50 ms | p99 ms | CPU µs/msg | user µs/msg | server cores"
            " | client cores | MiB/s | msg/s ÷ uvicorn | CPU/msg ÷ uvicorn | errors |",
            "| --- |" + " ---: |" * 11,
        ]
        rows: dict[str, dict[str, float | None]] = {}
        failed: dict[str, str] = {}
        errors: dict[str, Counter[str]] = {}
        for server in meta["servers"]:
            group = [p for p in points if p.scenario == name and p.server == server]
            ok = [p for p in group if p.status == "ok"]
            if not ok:
                failed[server] = "; ".join(
                    sorted({p.reason.splitlines()[0] for p in group if p.reason})
                )
                continue
            rows[server] = {k: _median([getattr(p, k) for p in ok]) for k in keys}
            errors[server] = Counter()
            for p in ok:
                errors[server].update(p.errors)
        anchor = rows.get(ANCHOR)
        for server in meta["servers"]:
            if server in failed:
                lines.append(f"| {server} | failed: {failed[server]} |" + " |" * 11)
                continue
            row = rows[server]
            ratio = cpu_ratio = "-"
            if anchor and anchor["messages_per_s"] and row["messages_per_s"]:
                ratio = f"{row['messages_per_s'] / anchor['messages_per_s']:.2f}"
            if anchor and anchor["cpu_us_per_message"] and row["cpu_us_per_message"]:
                cpu_ratio = f"{row['cpu_us_per_message'] / anchor['cpu_us_per_message']:.2f}"
            lines.append(
                f"| {server} | {_fmt(row['messages_per_s'], 0)} | {_fmt(row['p50_ms'], 2)}"
                f" | {_fmt(row['p99_ms'], 2)} | {_fmt(row['cpu_us_per_message'])}"
                f" | {_fmt(row['user_us_per_message'])} | {_fmt(row['server_cores'], 2)}"
                f" | {_fmt(row['client_cores'], 2)} | {_fmt(row['mib_per_s'])} | {ratio}"
                f" | {cpu_ratio} | {dict(errors[server]) or 0} |"
            )
        bars += _bars(name, rows, meta["servers"])
        starved = [s for s, row in rows.items() if (row["server_cores"] or 0) < STARVED_CORES]
        if starved:
            seen: dict[str, list[float]] = {}
            for p in points:
                if p.scenario == name and p.server in starved:
                    for cpu, share in p.cpus_busy.items():
                        seen.setdefault(cpu, []).append(share)
            busy = [f"{cpu} {min(v):.2f}-{max(v):.2f}" for cpu, v in sorted(seen.items())]
            lines += [
                "",
                f"Server cores below {STARVED_CORES} ({', '.join(starved)}): those servers were"
                " not the limit (a busy machine, or the client); their msg/s say little, their"
                f" CPU µs/msg still do. CPUs busy (by anyone) in those windows: {', '.join(busy)}.",
            ]
    lines += ["", "## Bars (issue #12)", "", *bars]
    return "\n".join(lines) + "\n"


def _bars(name: str, rows: dict[str, dict[str, float | None]], servers: list[str]) -> list[str]:
    """The issue's bars in one scenario: msg/s ÷ uvicorn's, and what the CPU per message says
    (uvicorn's ÷ swserve's: the throughput ratio when both are limited by their one core)."""
    anchor = rows.get(ANCHOR, {})
    lines = []
    for server, bar in BARS.items():
        if server not in servers:
            continue
        row = rows.get(server, {})
        rps, anchor_rps = row.get("messages_per_s"), anchor.get("messages_per_s")
        if not rps or not anchor_rps:
            lines.append(f"- {name}: {server} ≥ {bar:.1f}x uvicorn: not measured")
            continue
        verdict = "PASS" if rps / anchor_rps >= bar else "FAIL"
        cpu, anchor_cpu = row.get("cpu_us_per_message"), anchor.get("cpu_us_per_message")
        by_cpu = f"{anchor_cpu / cpu:.2f}x" if cpu and anchor_cpu else "-"
        lines.append(
            f"- {name}: {server} ≥ {bar:.1f}x uvicorn: msg/s {rps / anchor_rps:.2f}x — {verdict}"
            f" (by CPU per message: {by_cpu})"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=",".join(SCENARIOS), help="small,64k")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--duration", type=float, default=5.0, help="measured s per point")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    add_common_options(parser, clients=2)
    args = parse_common(parser, argv)
    args.scenarios = [s for s in args.scenario.split(",") if s]
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    return args


def add_common_options(parser: argparse.ArgumentParser, clients: int) -> None:
    """The options of ``ws_echo`` and ``ws_idle`` alike (``--servers`` is each one's own)."""
    parser.add_argument("--clients", type=int, default=clients, help="client processes")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--no-install", action="store_true", help="use the anchors venv as is")
    parser.add_argument("--output-dir", type=Path, default=run.RESULTS_DIR)


def parse_common(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; ``args.server_names`` from ``--servers``, each a known one (else a usage error)."""
    args = parser.parse_args(argv)
    args.server_names = [s for s in args.servers.split(",") if s]
    for name in args.server_names:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r} (known: {', '.join(SERVERS)})")
    return args


def settings_for(args: argparse.Namespace, workdir: Path) -> run.Settings:
    missing = run.ensure_venv(
        no_install=args.no_install,
        with_swserve=any(s.startswith("swserve") for s in args.server_names),
    )
    return run.Settings(
        suite=run.SUITES["quick"],
        duration_s=int(args.duration),
        connections=None,
        workers=1,
        warmup_s=int(args.warmup),
        ready_timeout_s=run.READY_TIMEOUT_S,
        pinning=run.Pinning.choose(enabled=not args.no_pin),
        workdir=workdir,
        swserve_missing=missing,
    )


def base_meta(args: argparse.Namespace, settings: run.Settings) -> dict[str, Any]:
    """What every WebSocket result records about its run (the scenario adds its own)."""
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "argv": sys.argv,
        "pinning": settings.pinning.describe(),
        "clients": args.clients,
        "servers": args.server_names,
        "uvicorn_ws": args.uvicorn_ws,
        "loadavg": os.getloadavg(),
        "versions": run.installed_versions(),
    }


def write(
    points: Sequence[Any], meta: dict[str, Any], summary: str, label: str, output: Path
) -> None:
    """``results/<time>-<label>.json`` (meta and every point) and ``.md`` (the summary)."""
    output.mkdir(parents=True, exist_ok=True)
    stem = output / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}"
    Path(f"{stem}.json").write_text(
        json.dumps({"meta": meta, "points": [asdict(p) for p in points]}, indent=1)
    )
    Path(f"{stem}.md").write_text(summary)
    run.log(f"wrote {stem}.json and {stem}.md")


def harness(
    args: argparse.Namespace,
    label: str,
    extra_meta: dict[str, Any],
    measure_all: Callable[[run.Settings], list[Any]],
    summarise_all: Callable[[list[Any], dict[str, Any]], str],
) -> int:
    """Set up (anchors venv, pinning, a work directory), measure, write and print the summary."""
    with tempfile.TemporaryDirectory(prefix=f"{label}-") as tmp:
        settings = settings_for(args, Path(tmp))
        args.uvicorn_ws = uvicorn_ws_flag()
        meta = base_meta(args, settings) | extra_meta
        points = measure_all(settings)
        summary = summarise_all(points, meta)
        write(points, meta, summary, label, args.output_dir)
        print(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def measure_all(settings: run.Settings) -> list[EchoPoint]:
        points = []
        for repeat in range(args.repeat):
            for name in args.scenarios:
                for server_name in args.server_names:  # interleaved: A B C A B C
                    run.log(f"ws-{name} {server_name} #{repeat + 1} ...")
                    point = measure(run.SERVERS_BY_NAME[server_name], name, repeat, settings, args)
                    run.log(
                        f"  {point.status} {point.reason[:200]} msg/s={point.messages_per_s}"
                        f" cpu µs/msg={point.cpu_us_per_message} client cores={point.client_cores}"
                    )
                    points.append(point)
        return points

    meta = {"duration_s": args.duration, "repeat": args.repeat, "scenarios": args.scenarios}
    return harness(args, "ws-echo", meta, measure_all, report)


if __name__ == "__main__":
    raise SystemExit(main())
