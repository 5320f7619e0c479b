"""Summaries of the points, and the helpers every report section uses."""

from __future__ import annotations

import signal
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.run.common import Point
from loadtests.run.scenarios import APPS, SCENARIOS_BY_NAME, WRK
from loadtests.run.servers import SERVERS, SERVERS_BY_NAME, Server

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


def _mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.1f}"


def paired_notes(
    plain: Sequence[Point],
    held: Sequence[Point],
    plain_group: Sequence[Point],
    held_group: Sequence[Point],
) -> str:
    """The notes cell of a row that pairs runs without and with connections held open."""
    notes = [group_notes(plain_group), group_notes(held_group)]
    blocked = [p for p in [*plain, *held] if p.requests == 0]
    if blocked:
        notes.append(
            f"blocked: wrk completed no request in {len(blocked)} "
            f"{'/'.join(dict.fromkeys(p.variant for p in blocked))} run(s)"
        )
    trouble = [p.server_fd_trouble[0] for p in [*plain, *held] if p.server_fd_trouble]
    if trouble:
        notes.append(f"out of fds: {_shorten(trouble[0], 120)}")
    return "; ".join(filter(None, notes))
