#!/usr/bin/env python3
"""The price of client affinity: the ``mixed`` open-loop scenario with ``--dispatch idle``
beside ``--dispatch ip``.

The same Poisson schedule as ``run.py --scenario mixed`` (``openloop.py``: 10 % of the requests
sleep 50 ms, the rest 1 ms; 2 workers x 1 thread), sent from ``--sources`` loopback addresses
(127.0.0.2, 127.0.0.3, …: each one a client), to swserve with each dispatch mode in turn:

* ``idle`` sends every request to an idle worker, and a fast request waits only when both
  workers are busy;
* ``ip`` sends every request of one client address to that address's worker, and a fast request
  whose worker is busy with a slow one waits for it, even while the other worker is idle.

The difference in fast-request latency is what affinity costs on this load; the CPU per request
shows what the affinity lookup costs the server. Each point starts a fresh server from this
checkout (``python -m swserve`` with the interpreter running this script), warms it up, and
measures the CPU time of its whole process tree from /proc, as ``loadtests.run`` does (its helpers are
imported, not copied). The server tree is pinned to every CPU but the first on 2-4 CPU machines.

Usage (from the repository root, with swserve installed in the interpreter's environment):

    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.affinity
    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.affinity --rates 170 --duration 5

Prints a Markdown table; ``--output FILE`` also writes every point's raw JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from loadtests.run import (
    HERE,
    HOST,
    OPENLOOP_SCRIPT,
    OPENLOOP_TIMEOUT_S,
    OPENLOOP_WARMUP_RATE,
    READY_TIMEOUT_S,
    SWSERVE_PORT,
    Pinning,
    PointError,
    run_openloop,
    session,
    tree_cpu,
    wait_ready,
)

MODES: Final = ("idle", "ip")
DEFAULT_RATES: Final = (170.0, 270.0)  # the mixed scenario's: ~50 % and ~80 % of capacity
DEFAULT_SOURCES: Final = 16
DEFAULT_CONNECTIONS: Final = 32
WORKERS: Final = 2


def measure(
    mode: str, rate: float, args: argparse.Namespace, pinning: Pinning, workdir: Path
) -> dict[str, Any]:
    """One point: a fresh server with ``--dispatch mode``, warmed up, then the schedule."""
    log_path = workdir / f"swserve-{mode}-{rate:g}.log"
    out = workdir / f"openloop-{mode}-{rate:g}.json"
    argv = [
        *pinning.server_prefix(), sys.executable, "-m", "swserve", "mixed:app",
        "--app-dir", str(HERE / "apps"), "--bind", f"{HOST}:0", "--workers", str(WORKERS),
        "--threads", "1", "--dispatch", mode,
    ]  # fmt: skip
    with (
        open(log_path, "w") as log,
        session(argv, stdout=log, stderr=subprocess.STDOUT) as proc,
    ):
        port = wait_ready(proc, log_path, 0, SWSERVE_PORT, "/fast", READY_TIMEOUT_S)
        base = [*pinning.load_prefix(), sys.executable, str(OPENLOOP_SCRIPT)]
        base += ["--port", str(port), "--connections", str(args.connections)]
        base += ["--sources", str(args.sources), "--timeout", f"{OPENLOOP_TIMEOUT_S:g}"]
        if args.warmup > 0:  # another seed: the measured schedule stays unseen
            warm = ["--rate", f"{OPENLOOP_WARMUP_RATE:g}", "--duration", f"{args.warmup:g}"]
            run_openloop([*base, *warm, "--seed", str(args.seed + 1000)], args.warmup)
        cpu_before, _ = tree_cpu(proc.pid)
        started = time.monotonic()
        run = ["--rate", f"{rate:g}", "--duration", f"{args.duration:g}"]
        run += ["--seed", str(args.seed), "--output", str(out)]
        run_openloop([*base, *run], args.duration)
        wall = time.monotonic() - started
        cpu_after, _ = tree_cpu(proc.pid)
    result = json.loads(out.read_text())
    if result["run"]["errors"]:  # keep what the server said about it
        result["server_log_tail"] = log_path.read_text(errors="replace").splitlines()[-40:]
    answered = result["run"]["ok"] + result["run"]["errors"]
    result["server"] = {
        "dispatch": mode,
        "cpu_s": round(cpu_after - cpu_before, 3),
        "cpu_us_per_req": round((cpu_after - cpu_before) * 1e6 / answered, 1) if answered else None,
        "cores_used": round((cpu_after - cpu_before) / wall, 3),
        "argv": argv,
    }
    return result


def table(points: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| rate | dispatch | fast p50 ms | fast p99 ms | fast p99 ÷ ideal | slow p99 ms "
        "| errors | CPU µs/req | generator lag p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        run, ideal, server = p["run"], p["ideal"], p["server"]
        fast99, ideal99 = run["fast"]["p99_ms"], ideal["fast"]["p99_ms"]
        ratio = f"{fast99 / ideal99:.2f}x" if fast99 and ideal99 else "-"
        lines.append(
            f"| {p['params']['rate']:g}/s | {server['dispatch']} | {run['fast']['p50_ms']} "
            f"| {fast99} | {ratio} | {run['slow']['p99_ms']} | {run['errors']} "
            f"| {server['cpu_us_per_req']} | {run['generator_lag']['p99_ms']} |"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES), help="req/s, comma-separated")
    add("--duration", type=float, default=10.0, help="seconds of arrivals per point")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up load per point")
    add("--repeat", type=int, default=1, help="points per rate and mode (interleaved)")
    add("--sources", type=int, default=DEFAULT_SOURCES, help="client addresses 127.0.0.2 …")
    add("--connections", type=int, default=DEFAULT_CONNECTIONS, help="keep-alive pool size")
    add("--seed", type=int, default=1, help="same seed: same arrivals and kinds")
    add("--no-pin", action="store_true", help="do not pin the server and the generator")
    add("--output", help="write every point's JSON here")
    args = parser.parse_args(argv)
    args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    if not args.rate_list or args.sources < 1 or args.repeat < 1:
        parser.error("give at least one rate, --sources >= 1 and --repeat >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = Pinning.choose(enabled=not args.no_pin)
    points = []
    with tempfile.TemporaryDirectory(prefix="swserve-affinity-") as tmp:
        for rate in args.rate_list:
            for _ in range(args.repeat):
                for mode in MODES:  # interleaved: drift hits both modes alike
                    try:
                        points.append(measure(mode, rate, args, pinning, Path(tmp)))
                    except PointError as exc:
                        print(f"{mode} at {rate:g}/s failed: {exc}", file=sys.stderr)
                        return 1
    print(
        f"mixed open loop, {WORKERS} workers x 1 thread, {args.connections} connections from "
        f"{args.sources} addresses, {args.duration:g} s per point, seed {args.seed}, "
        f"pinning {pinning.describe()}, load average {os.getloadavg()[0]:.2f}\n"
    )
    print("\n".join(table(points)))
    if args.output:
        Path(args.output).write_text(json.dumps(points, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
