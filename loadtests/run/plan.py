"""The plan of points and the loop that runs it."""

from __future__ import annotations

import math
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.run.common import Point, PointError, StopRequestedError, log
from loadtests.run.held import record_failure
from loadtests.run.measure import measure
from loadtests.run.scenarios import IDLE, RELOAD, SLOWLORIS, Scenario
from loadtests.run.servers import Server
from loadtests.run.settings import Settings
from loadtests.run.tables import _fmt, _mib


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
