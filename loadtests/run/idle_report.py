"""The report's idle-connections and start-up sections."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.run.common import Point
from loadtests.run.scenarios import (
    IDLE,
    IDLE_CONNECTIONS,
    OPENLOOP,
    SCENARIOS_BY_NAME,
    STARTUP,
    STARTUP_POLL_S,
    WITH,
    WITHOUT,
)
from loadtests.run.sections import _kind_median, _ok
from loadtests.run.servers import SERVERS_BY_NAME
from loadtests.run.tables import (
    _first_app,
    _fmt,
    _groups,
    _int,
    _median,
    _mib,
    _socket_errors,
    _table,
    group_notes,
    paired_notes,
)


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
        row.append(paired_notes(without, held, without_group, with_group))
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
