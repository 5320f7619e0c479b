"""The issue's bars, evaluated from one run's points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from loadtests.run.common import Point
from loadtests.run.idle_report import idle_figures, mixed_fast_p99
from loadtests.run.scenarios import (
    IDLE,
    IDLE_CONNECTIONS,
    IDLE_MIN_RATIO,
    IDLE_RSS_BASE_KIB,
    IDLE_RSS_PER_CONN_KIB,
    OPENLOOP,
    OPENLOOP_RATES,
    SCENARIOS_BY_NAME,
    STARTUP,
    STARTUP_MAX_S,
    WITH,
    WITHOUT,
)
from loadtests.run.sections import MIXED_ANCHORS, MIXED_MAX_ANCHOR_RATIO, MIXED_MAX_IDEAL_RATIO, _ok
from loadtests.run.settings import rate_variant, variant_rate
from loadtests.run.tables import Summary, _groups, _median, _table

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
