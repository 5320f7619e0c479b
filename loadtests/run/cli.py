"""The command line: ``python -m loadtests.run``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from loadtests.run.anchors import compile_checkout, ensure_venv, installed_versions
from loadtests.run.common import READY_TIMEOUT_S, RESULTS_DIR, Point, StopRequestedError, log
from loadtests.run.plan import make_plan, run_plan
from loadtests.run.procs import Pinning, _raise_stop_requested
from loadtests.run.report import DOCS_PAGE, markdown, render_chart, write_docs, write_results
from loadtests.run.scenarios import (
    HUP_INTERVAL_S,
    IDLE,
    IDLE_CONNECTIONS,
    MAX_REQUESTS,
    OPENLOOP_RATES,
    OPENLOOP_SEED,
    SCENARIOS,
    SCENARIOS_BY_NAME,
    SLOWLORIS,
    SLOWLORIS_CONNECTIONS,
    SLOWLORIS_SOAK_S,
    SUITES,
    Scenario,
)
from loadtests.run.servers import SERVERS, SERVERS_BY_NAME
from loadtests.run.settings import Settings
from loadtests.run.tables import summarise

# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _names(table: dict[str, Any], what: str) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in table]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(table)}"
            )
        return names

    return parse


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _rates(value: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(rate) for rate in value.split(",") if rate.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from exc
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a list of positive rates")
    return rates


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark swserve against uvicorn, gunicorn and granian with wrk.",
        epilog="example: python3 -m loadtests.run --suite quick --servers swserve,granian",
    )
    add = parser.add_argument
    add("--suite", choices=SUITES, default="quick", help="quick (default), full or reload")
    add(
        "--scenario",
        type=_names(SCENARIOS_BY_NAME, "scenario"),
        help="only these scenarios (comma-separated; see --list), with the suite's defaults",
    )
    add(
        "--servers",
        type=_names(SERVERS_BY_NAME, "server"),
        help=f"comma-separated subset of {','.join(SERVERS_BY_NAME)} (default: all; "
        "slowloris: swserve, gunicorn-sync, gunicorn-gthread, uvicorn)",
    )
    add(
        "--duration",
        type=_positive,
        help="seconds per point (default: quick 5, full 8, reload and mixed 20, slowloris 10)",
    )
    add(
        "--connections",
        type=_positive,
        help="wrk connections (default 64; slowloris 32); mixed: openloop.py's keep-alive pool"
        " (default 32)",
    )
    add(
        "--workers",
        type=_positive,
        help="server worker processes (default 1; reload and mixed: 2)",
    )
    add(
        "--repeat",
        type=_positive,
        help="runs per point (default: quick 2, full 3, reload, mixed and slowloris 1)",
    )
    add(
        "--rates",
        type=_rates,
        default=OPENLOOP_RATES,
        help="mixed: open-loop arrival rates in req/s, comma-separated (default 170,270)",
    )
    add("--seed", type=int, default=OPENLOOP_SEED, help="mixed: schedule seed (default 1)")
    add("--warmup", type=int, default=1, help="unmeasured wrk seconds before each run (1)")
    add("--ready-timeout", type=float, default=READY_TIMEOUT_S, help="seconds (default 30)")
    add("--no-install", action="store_true", help="use the anchors venv as it is, if present")
    add("--no-pin", action="store_true", help="do not pin the server and wrk with taskset")
    add("--output-dir", type=Path, default=RESULTS_DIR, help="default: loadtests/results")
    add(
        "--write-docs",
        action="store_true",
        help="also write the snapshot in docs/benchmarks.md and docs/benchmarks.png",
    )
    add(
        "--from-json",
        type=Path,
        metavar="RESULT.json",
        help="measure nothing: write the report and chart of a saved run again (from its "
        "JSON in results/), and with --write-docs its snapshot",
    )
    add("--list", action="store_true", help="list the servers and scenarios, then exit")
    return parser.parse_args(argv)


def held_connections(scenario: Scenario) -> int:
    """How many connections a client of ``scenario`` holds open beside the load (or 0)."""
    return {SLOWLORIS: SLOWLORIS_CONNECTIONS, IDLE: IDLE_CONNECTIONS}.get(scenario.kind, 0)


def raise_nofile_limit(needed: int) -> dict[str, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return both, before/after.

    Warns when the result leaves fewer than ``needed`` + 256 fds (the client's connections and
    the server's, plus wrk's and the processes' own).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    result = {"soft_before": soft, "hard": hard, "soft": soft}
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit
            log(f"could not raise RLIMIT_NOFILE from {soft} to {hard}: {exc}")
        result["soft"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if 0 <= result["soft"] < needed + 256:
        log(
            f"warning: RLIMIT_NOFILE is {result['soft']}: a client holding {needed} connections, "
            "or the server, may run out of fds (raise the hard limit: ulimit -Hn)"
        )
    return result


def list_tables() -> None:
    print("servers:")
    for server in SERVERS:
        print(f"  {server.name:17} {'/'.join(sorted(server.interfaces))}")
    print("scenarios:")
    for scenario in SCENARIOS:
        suites = ",".join(sorted(scenario.suites)) or "--scenario only"
        print(f"  {scenario.name:16} {suites:16} {scenario.kind:9} {scenario.summary}")


def load_results(json_path: Path) -> tuple[dict[str, Any], list[Point]]:
    """A run's meta and points from its JSON (fields a newer harness added get defaults).

    Raises:
        SystemExit: the file is missing or is not a results file.
    """
    try:
        payload = json.loads(json_path.read_text())
        known = {f.name for f in fields(Point)}
        points = [Point(**{k: v for k, v in p.items() if k in known}) for p in payload["points"]]
        meta: dict[str, Any] = payload["meta"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{json_path}: not a loadtests result file ({exc})") from None
    meta.setdefault("command", shlex.join(["python3", "-m", "loadtests.run", *meta["argv"][1:]]))
    return meta, points


def report_again(args: argparse.Namespace) -> int:
    """--from-json: the report, the chart (and with --write-docs the snapshot) of a saved run."""
    json_path: Path = args.from_json
    meta, points = load_results(json_path)
    unknown = sorted({p.scenario for p in points} - set(SCENARIOS_BY_NAME))
    if unknown:
        raise SystemExit(f"{json_path}: unknown scenarios {', '.join(unknown)}")
    summaries = summarise(points)
    png_path = json_path.with_suffix(".png")
    png = png_path if any(s.rps for s in summaries) and render_chart(json_path, png_path) else None
    report = markdown(summaries, points, meta, chart=png.name if png else "")
    json_path.with_suffix(".md").write_text(report)
    print(report)
    log(f"wrote {json_path.with_suffix('.md')}" + (f" and {png}" if png else ""))
    if args.write_docs and meta.get("interrupted"):
        log(f"not writing {DOCS_PAGE}: the run was interrupted")
    elif args.write_docs:
        write_docs(meta, summaries, points, png)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_tables()
        return 0
    if args.from_json:
        return report_again(args)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    suite = SUITES[args.suite]
    if args.scenario:
        scenarios = [SCENARIOS_BY_NAME[name] for name in args.scenario]
    else:
        scenarios = [s for s in SCENARIOS if args.suite in s.suites]
    servers = [SERVERS_BY_NAME[name] for name in args.servers or SERVERS_BY_NAME]
    if not any(scenario.app_for(server) for scenario in scenarios for server in servers):
        raise SystemExit("nothing to run: no selected server serves the selected scenarios")

    signal.signal(signal.SIGTERM, _raise_stop_requested)
    signal.signal(signal.SIGHUP, _raise_stop_requested)
    try:
        swserve_missing = ensure_venv(
            no_install=args.no_install, with_swserve=any(server.subject for server in servers)
        )
    except (KeyboardInterrupt, StopRequestedError):
        return 130
    compile_checkout()
    pinning = Pinning.choose(enabled=not args.no_pin)
    repeat = args.repeat or suite.repeat
    # slowloris and idle-connections: the client (a child of ours) holds 500 or 10,000 sockets,
    # and the servers we start inherit our limit too; raise the soft limit to the hard one, as
    # a systemd LimitNOFILE would
    held = [held_connections(s) for s in scenarios if held_connections(s)]
    nofile = raise_nofile_limit(max(held)) if held else {}
    meta: dict[str, Any] = {
        "label": "+".join(args.scenario) if args.scenario else args.suite,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": sys.argv,
        "command": shlex.join(["python3", "-m", "loadtests.run", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "pinning": pinning.describe(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # of the wrk scenarios; reload, mixed and slowloris record their own in each point
        "duration_s": args.duration or suite.duration_s,
        "connections": args.connections or suite.connections,
        "workers": args.workers or 1,
        "repeat": repeat,
        "warmup_s": args.warmup,
        "hup_interval_s": HUP_INTERVAL_S,
        "max_requests": MAX_REQUESTS,
        "rates": list(args.rates),
        "seed": args.seed,
        "slowloris_connections": SLOWLORIS_CONNECTIONS,
        "slowloris_soak_s": SLOWLORIS_SOAK_S,
        "nofile": nofile,
        "versions": installed_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="swserve-loadtest-") as workdir:
        settings = Settings(
            suite=suite,
            duration_s=args.duration,
            connections=args.connections,
            workers=args.workers,
            warmup_s=args.warmup,
            ready_timeout_s=args.ready_timeout,
            pinning=pinning,
            workdir=Path(workdir),
            swserve_missing=swserve_missing,
            rates=args.rates,
            seed=args.seed,
        )
        plan = make_plan(
            scenarios, servers, settings, args.repeat, servers_given=args.servers is not None
        )
        points, meta["interrupted"] = run_plan(plan, settings)
    summaries = summarise(points)
    json_path, report, png = write_results(args.output_dir, meta, summaries, points)
    print(report)
    log(f"wrote {json_path}, {json_path.with_suffix('.md')}" + (f" and {png}" if png else ""))
    if args.write_docs and meta["interrupted"]:
        log(f"not writing {DOCS_PAGE}: the run was interrupted")
    elif args.write_docs:
        write_docs(meta, summaries, points, png)
    return 130 if meta["interrupted"] else 0
