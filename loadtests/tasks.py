#!/usr/bin/env python3
"""Task offload: swserve's task workers against ``run_in_executor(ProcessPoolExecutor)`` in uvicorn.

The same ASGI app (``loadtests/apps/tasks_offload.py``) offloads a trivial function N times, C
at a time, from one worker's event loop, and times each round trip on that loop:

- ``swserve``: ``swserve APP --workers 1 --task-workers 2``, ``await swserve.task(trivial, i)``;
- ``uvicorn+executor``: ``uvicorn APP --workers 1``, ``await loop.run_in_executor(pool,
  trivial, i)`` with ``ProcessPoolExecutor(2)``.

Both run on the same machine in one run, interleaved (A B A B with ``--repeat``), unpinned:
the load comes from inside the app, so no load generator competes for a core.  Reported:
tasks per second, round-trip p50/p99, and the CPU time of the server's whole process tree
(task workers and pool processes included) per task, read from /proc.  The bar (issue #14):
swserve's round trip (p50) costs at most 1.5x the executor's.

Run under the benchmark lock on the shared machine::

    flock /tmp/swserve-bench.lock python3 loadtests/tasks.py --tasks 5000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.run import (
    HOST,
    RESULTS_DIR,
    VENV_BIN,
    PointError,
    ensure_venv,
    server_env,
    session,
    tree_ticks,
    wait_ready,
)

APP = "loadtests.apps.tasks_offload:app"
BAR = 1.5  # swserve's p50 round trip <= BAR x the executor's

SERVERS: dict[str, tuple[list[str], str, str]] = {
    # name: (argv, the log line with the port, ?via=)
    "swserve": (
        ["swserve", APP, "--bind", f"{HOST}:0", "--workers", "1", "--task-workers", "2"],
        r"Listening on http://127\.0\.0\.1:(\d+)",
        "swserve",
    ),
    "uvicorn+executor": (
        ["uvicorn", APP, "--host", HOST, "--port", "0", "--workers", "1", "--log-level", "info"],
        r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
        "executor",
    ),
}


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def measure(name: str, tasks: int, concurrency: int, out_dir: Path) -> dict[str, Any]:
    argv, port_line, via = SERVERS[name]
    argv = [str(VENV_BIN / argv[0]), *argv[1:]]
    log_path = out_dir / f"tasks-{name}.log"
    with (
        log_path.open("w") as log_file,
        session(argv, stdout=log_file, stderr=log_file, env=server_env()) as proc,
    ):
        port = wait_ready(proc, log_path, 0, port_line, "/", 30.0)
        url = f"http://{HOST}:{port}/bench?via={via}&tasks={tasks}&concurrency={concurrency}"
        with urllib.request.urlopen(url.replace(f"tasks={tasks}", "tasks=200"), timeout=120):
            pass  # warm-up run, not measured
        cpu_before, _, _ = tree_ticks(proc.pid)
        with urllib.request.urlopen(url, timeout=300) as response:
            result = json.loads(response.read())
        cpu_after, _, _ = tree_ticks(proc.pid)
    trips = result["round_trips_us"]
    if len(trips) != tasks:
        raise PointError(f"{name}: {len(trips)} round trips for {tasks} tasks")
    return {
        "server": name,
        "tasks": tasks,
        "concurrency": concurrency,
        "tasks_per_s": tasks / result["wall_s"],
        "p50_us": percentile(trips, 0.50),
        "p99_us": percentile(trips, 0.99),
        "mean_us": statistics.fmean(trips),
        "cpu_us_per_task": (cpu_after - cpu_before) * 1e6 / tasks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-install", action="store_true")
    args = parser.parse_args()
    problem = ensure_venv(no_install=args.no_install, with_swserve=True)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    RESULTS_DIR.mkdir(exist_ok=True)
    points = []
    for _ in range(args.repeat):
        for name in SERVERS:  # interleaved: A B A B
            point = measure(name, args.tasks, args.concurrency, RESULTS_DIR)
            points.append(point)
            print(
                f"{name:18} {point['tasks_per_s']:8.0f} tasks/s  p50 {point['p50_us']:7.0f} µs  "
                f"p99 {point['p99_us']:7.0f} µs  CPU {point['cpu_us_per_task']:6.0f} µs/task",
                flush=True,
            )
    best = {
        name: min((p for p in points if p["server"] == name), key=lambda p: p["p50_us"])
        for name in SERVERS
    }
    ratio = best["swserve"]["p50_us"] / best["uvicorn+executor"]["p50_us"]
    verdict = "holds" if ratio <= BAR else "FAILS"
    print(f"round trip p50, swserve / executor: {ratio:.2f}x (bar ≤ {BAR}x): {verdict}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS_DIR / f"{stamp}-tasks.json").write_text(
        json.dumps({"argv": sys.argv, "points": points}, indent=1)
    )
    return 0 if ratio <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
