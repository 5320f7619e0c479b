#!/usr/bin/env python3
"""Two checkouts of swserve side by side: CPU µs per request of hello WSGI and ASGI.

The commit named by ``--base`` (default ``main``) is exported with ``git archive`` into a
temporary directory; this checkout is the other side.  For each repeat, each app (hello WSGI,
hello ASGI) and each mode (process, base), swserve from one tree and then from the other serves
wrk (interleaved: base, head, base, head, so a noisy neighbour hits both alike), started with
this venv's Python and the tree first on ``PYTHONPATH``.  It prints requests/s and the server
tree's CPU µs per request (medians over the repeats) and the ratio head / base.

Reuses ``run.py``'s pinning, wrk runner, readiness wait and /proc CPU accounting.

Example:
    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.compare --base 14e770d \\
        --duration 5 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from loadtests.run import HOST, REPO_ROOT, Pinning, run_wrk, session, tree_cpu, wait_ready

APPS = {"wsgi": "loadtests.apps.hello_wsgi:app", "asgi": "loadtests.apps.hello_asgi:app"}
MODES = ("process", "base")
PORT_LINE = r"Listening on http://127\.0\.0\.1:(\d+)"


def export(ref: str, into: Path) -> Path:
    """``ref``'s tree (swserve and the load-test apps) as plain files under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", ref, "swserve", "loadtests"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into / "swserve")], check=False)
    return into


def point(
    tree: Path, interface: str, mode: str, args: argparse.Namespace, pinning: Pinning, log: Path
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    env["PYTHONPATH"] = str(tree)
    env["PYTHONUNBUFFERED"] = "1"
    argv = [
        *pinning.server_prefix(), sys.executable, "-m", "swserve", APPS[interface],
        "--bind", f"{HOST}:0", "--workers", "1", "--mode", mode,
    ]  # fmt: skip
    with log.open("w") as out, session(argv, stdout=out, stderr=out, env=env) as proc:
        port = wait_ready(proc, log, 0, PORT_LINE, "/", 30)
        url = f"http://{HOST}:{port}/"
        run_wrk(url, duration_s=1, connections=64, script=None, pinning=pinning)  # warm-up
        before, _ = tree_cpu(proc.pid)
        result, _ = run_wrk(
            url, duration_s=args.duration, connections=64, script=None, pinning=pinning
        )
        after, _ = tree_cpu(proc.pid)
    return {
        "rps": result.rps,
        "cpu_us_per_request": 1e6 * (after - before) / max(1, result.requests),
        "errors": result.non_2xx_3xx + sum(result.socket_errors.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the git ref to compare against")
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per point")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    pinning = Pinning.choose(enabled=not args.no_pin)
    points: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="swserve-compare-") as tmp:
        trees = {"base": export(args.base, Path(tmp) / "base"), "head": REPO_ROOT}
        for _ in range(args.repeat):
            for interface in APPS:
                for mode in MODES:
                    for side, tree in trees.items():
                        log = Path(tmp) / f"{side}-{interface}-{mode}.log"
                        measured = point(tree, interface, mode, args, pinning, log)
                        points.setdefault((interface, mode, side), []).append(measured)
    print(f"base {args.base} vs head {REPO_ROOT}, pinning {pinning.describe()}, "
          f"{args.duration} s x {args.repeat}, medians")  # fmt: skip
    print(
        "| app | mode | base req/s | head req/s | base CPU µs/req | head CPU µs/req | head/base |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    summary: dict[str, float] = {}
    for interface in APPS:
        for mode in MODES:
            row: dict[str, tuple[float, float]] = {}
            for side in ("base", "head"):
                got = points[interface, mode, side]
                row[side] = (
                    statistics.median(p["rps"] for p in got),
                    statistics.median(p["cpu_us_per_request"] for p in got),
                )
            ratio = row["head"][1] / row["base"][1]
            summary[f"{interface}-{mode}"] = round(ratio, 3)
            print(
                f"| {interface} hello | {mode} | {row['base'][0]:.0f} | {row['head'][0]:.0f} "
                f"| {row['base'][1]:.1f} | {row['head'][1]:.1f} | {ratio:.3f} |"
            )
    json.dump({"ratios": summary, "points": {"/".join(k): v for k, v in points.items()}},
              sys.stderr, indent=1)  # fmt: skip
    print(file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
