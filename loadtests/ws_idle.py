#!/usr/bin/env python3
"""10,000 idle WebSocket sessions: what each costs the reactor (the master) and the worker.

swserve (``--mode process``, one worker, ``--max-connections`` above the sessions) on
``apps/ws_echo.py``. After it answers, a warm-up of ``--warmup-sessions`` (200) sessions is
opened, used once and closed (so that what a first session loads once, imports and pools, is
not counted per session); then the RSS of the reactor (the ``swserve: master`` process, plus
``swserve: reactor`` ones with ``--reactors``) and of the worker is read from
``/proc/<pid>/status`` (*before*). ``wsclient.py idle`` in ``--clients`` processes (4, pinned to
the load CPU, RLIMIT_NOFILE raised) opens ``--sessions`` (10,000) sessions; each does one echo
round trip, so the app has accepted it and its coroutine waits in ``receive()``; once every
client says ``ready`` and ``--settle`` seconds (1) have passed, the RSS is read again (*with*),
then the clients close their sessions (close 1000).

The report: KiB per session = (with - before) ÷ open sessions, for the reactor (the issue's bar,
#12: ≤ 16 KiB), the worker (the app's coroutines and the session state there), and the whole
tree; and the sessions the server closed while they were held (there should be none: the
server's pings are answered). ``--servers`` adds the anchors for comparison (uvicorn, granian:
the whole process tree; swserve-base: the worker owns its sessions).

Example:
    flock /tmp/swserve-bench.lock python3 -m loadtests.ws_idle
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from loadtests import run
from loadtests.ws_echo import (
    SERVERS,
    add_common_options,
    harness,
    parse_common,
    read_line,
    run_scenario,
    start_clients,
)

SESSIONS: Final = 10_000
BAR_KIB: Final = 16.0  # the issue: the reactor's cost per idle session
REACTOR: Final = r"^swserve: (master|reactor)"
WORKER: Final = r"^swserve: worker"
# the processes that hold the sessions' connections ("" = the whole tree)
FRONT: Final = {"swserve": REACTOR, "swserve-base": r"^swserve: (master|reactor|worker)"}
CLOSE_SLACK_S: Final = 30.0


@dataclass
class IdlePoint:
    server: str
    status: str = "ok"
    reason: str = ""
    sessions_open: int = 0
    ramp_s: float | None = None
    rss_kib: dict[str, dict[str, int | None]] = field(default_factory=dict)  # moment → part
    kib_per_session: dict[str, float | None] = field(default_factory=dict)
    server_closes: dict[str, int] = field(default_factory=dict)
    client_counts: dict[str, int] = field(default_factory=dict)
    server_run: dict[str, Any] = field(default_factory=dict)


def memory(pid: int, server: str) -> dict[str, int | None]:
    front = FRONT.get(server, "")
    parts = {
        "front": run.tree_memory(pid, front).rss_front_kib,
        "tree": run.tree_memory(pid, "").rss_tree_kib,
    }
    if server == "swserve":
        parts["worker"] = run.tree_memory(pid, WORKER).rss_front_kib
    return parts


def warm_up(port: int, sessions: int, settings: run.Settings) -> None:
    """Open ``sessions`` sessions, one echo each, and close them all."""
    with contextlib.ExitStack() as stack:
        (client,) = start_clients(stack, "idle", port, sessions, 1, settings)
        finish(client)


def finish(client: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert client.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        client.stdin.write(b"stop\n")
        client.stdin.flush()
    result: dict[str, Any] = json.loads(
        read_line(client, time.monotonic() + CLOSE_SLACK_S, "after stop")
    )
    return result


def measure(server: run.Server, settings: run.Settings, args: argparse.Namespace) -> IdlePoint:
    point = IdlePoint(server.name)
    base = run.Point(
        scenario="ws-idle",
        server=server.name,
        repeat=0,
        pinning=settings.pinning.describe(),
        connections=args.sessions,
        workers=1,
    )
    room = args.sessions + args.warmup_sessions + 1000
    limits = {
        "swserve": f"--max-connections {room}",
        "swserve-base": f"--max-connections {room}",
        "granian": f"--ws --backpressure {room}",
    }
    echo = run_scenario("small", args.uvicorn_ws)
    scenario = dataclasses.replace(echo, server_args={**echo.server_args, **limits})
    results: list[dict[str, Any]] = []
    try:
        with run.served(server, scenario, settings, base) as proc:
            assert base.port is not None
            if args.warmup_sessions:
                warm_up(base.port, args.warmup_sessions, settings)
            point.rss_kib["before"] = memory(proc.pid, server.name)
            started = time.monotonic()
            with contextlib.ExitStack() as stack:
                clients = start_clients(
                    stack, "idle", base.port, args.sessions, args.clients, settings
                )
                point.ramp_s = round(time.monotonic() - started, 2)
                time.sleep(args.settle)
                point.rss_kib["with"] = memory(proc.pid, server.name)
                results = [finish(client) for client in clients]
            base.server_fd_limit, base.server_fds_max = run.tree_fds(proc.pid)
    except run.PointError as exc:
        point.status, point.reason = exc.status, exc.reason
    point.server_run = asdict(base)
    if point.status != "ok":
        return point
    closes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for result in results:
        point.sessions_open += result["held_open"]
        closes.update(result["server_closes"])
        counts.update(result["counts"])
    # the 1000s are the answers to the clients' own closes at the end
    point.server_closes = {k: v for k, v in closes.items() if k != "1000"}
    point.client_counts = dict(counts)
    before, held = point.rss_kib["before"], point.rss_kib["with"]
    for part, after in held.items():
        if after is not None and before.get(part) is not None and point.sessions_open:
            grown = after - (before[part] or 0)
            point.kib_per_session[part] = round(grown / point.sessions_open, 2)
    return point


def report(points: list[IdlePoint], meta: dict[str, Any]) -> str:
    lines = [f"# {meta['sessions']:,} idle WebSocket sessions ({meta['started']})", ""]
    lines += [f"pinning: {meta['pinning']}; versions: {meta['versions']}", ""]
    lines += [
        "| server | open | ramp s | reactor KiB before → with | KiB/session reactor"
        " | worker KiB before → with | KiB/session worker | tree KiB/session"
        " | closed by the server |",
        "| --- |" + " ---: |" * 8,
    ]
    bars = []
    for p in points:
        if p.status != "ok":
            lines.append(f"| {p.server} | failed: {p.reason.splitlines()[0]} |" + " |" * 7)
            continue
        b, w = p.rss_kib["before"], p.rss_kib["with"]
        per = p.kib_per_session
        lines.append(
            f"| {p.server} | {p.sessions_open:,} | {p.ramp_s} | {b.get('front')} → {w.get('front')}"
            f" | {per.get('front')} | {b.get('worker', '-')} → {w.get('worker', '-')}"
            f" | {per.get('worker', '-')} | {per.get('tree')} | {p.server_closes or 'none'} |"
        )
        if p.server == "swserve" and per.get("front") is not None:
            verdict = "PASS" if (per["front"] or 0) <= BAR_KIB else "FAIL"
            bars.append(
                f"- swserve reactor ≤ {BAR_KIB:g} KiB per idle session: {per['front']} KiB"
                f" over {p.sessions_open:,} sessions — {verdict}"
            )
    lines += ["", "## Bar (issue #12)", "", *(bars or ["- not measured"])]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="swserve", help=f"of {','.join(SERVERS)}")
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--warmup-sessions", type=int, default=200)
    parser.add_argument("--settle", type=float, default=1.0, help="s between ready and the RSS")
    add_common_options(parser, clients=4)
    args = parse_common(parser, argv)
    # ws_echo.settings_for reads these
    args.duration, args.warmup = 0.0, 0.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = run.raise_nofile_limit(args.sessions + args.warmup_sessions)

    def measure_all(settings: run.Settings) -> list[IdlePoint]:
        points = []
        for name in args.server_names:
            run.log(f"ws-idle {name}: {args.sessions:,} sessions ...")
            point = measure(run.SERVERS_BY_NAME[name], settings, args)
            run.log(f"  {point.status} {point.reason[:300]} KiB/session={point.kib_per_session}")
            points.append(point)
        return points

    meta = {"sessions": args.sessions, "nofile": nofile}
    return harness(args, "ws-idle", meta, measure_all, report)


if __name__ == "__main__":
    raise SystemExit(main())
