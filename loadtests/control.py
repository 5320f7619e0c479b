#!/usr/bin/env python3
"""What watching a server costs: throughput and CPU per request with a control client polling.

swserve serves ``hello_wsgi`` under wrk twice per repeat: once alone (``quiet``) and once while
a client asks the control socket for ``stats`` and ``processes`` every ``--poll`` seconds
(``polled``; ``swserve top`` asks the same once a second, so the default 0.1 s is ten ``top``s).
For each it reports requests/s and the server tree's CPU µs per request; then the master's CPU
per control call of each kind, over ``--calls`` calls.  Ratios within one run are what count.

Reuses ``loadtests.run``'s pinning, wrk runner, readiness wait and /proc CPU accounting.

Example:
    flock /tmp/swserve-bench.lock python3 -m loadtests.control --duration 5 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from loadtests.run import HOST, Pinning, run_wrk, session, tree_cpu, wait_ready
from swserve.control import procinfo
from swserve.control.client import Client


def poll(sock: Path, every: float, stop: threading.Event) -> int:
    calls = 0
    with Client(sock) as client:
        while not stop.wait(every):
            client.call("stats")
            client.call("processes")
            calls += 2
    return calls


def point(
    pid: int, sock: Path, port: int, args: argparse.Namespace, pinning: Pinning, polled: bool
) -> dict[str, Any]:
    stop = threading.Event()
    counted: list[int] = []
    poller = threading.Thread(target=lambda: counted.append(poll(sock, args.poll, stop)))
    cpu_before, _ = tree_cpu(pid)
    if polled:
        poller.start()
    result, _ = run_wrk(
        f"http://{HOST}:{port}/", duration_s=args.duration, connections=64, script=None,
        pinning=pinning,
    )  # fmt: skip
    stop.set()
    if polled:
        poller.join()
    cpu_after, _ = tree_cpu(pid)
    return {
        "variant": "polled" if polled else "quiet",
        "rps": result.rps,
        "cpu_us_per_request": round(1e6 * (cpu_after - cpu_before) / max(1, result.requests), 2),
        "control_calls": counted[0] if counted else 0,
        "errors": result.non_2xx_3xx + sum(result.socket_errors.values()),
    }


def call_cost(pid: int, sock: Path, calls: int) -> dict[str, float]:
    out = {}
    with Client(sock) as client:
        for cmd in ("stats", "workers", "processes"):
            before = procinfo.sample(pid)
            for _ in range(calls):
                client.call(cmd)
            after = procinfo.sample(pid)
            assert before is not None
            assert after is not None
            out[cmd] = round(1e6 * (after.cpu_seconds - before.cpu_seconds) / calls, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per point")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between control calls")
    parser.add_argument("--calls", type=int, default=500, help="calls per kind for the cost")
    args = parser.parse_args(argv)
    pinning = Pinning.choose(enabled=True)
    with tempfile.TemporaryDirectory() as tmp:
        sock, log = Path(tmp) / "ctl.sock", Path(tmp) / "server.log"
        argv_server = [
            *pinning.server_prefix(), sys.executable, "-m", "swserve", "loadtests.apps.hello_wsgi:app",
            "--bind", f"{HOST}:0", "--workers", str(args.workers), "--control-socket", str(sock),
        ]  # fmt: skip
        with log.open("w") as out, session(argv_server, stdout=out, stderr=out) as proc:
            port = wait_ready(proc, log, 0, r"Listening on http://127\.0\.0\.1:(\d+)", "/", 30)
            points = [
                point(proc.pid, sock, port, args, pinning, polled)
                for _ in range(args.repeat)
                for polled in (False, True)
            ]
            cost = call_cost(proc.pid, sock, args.calls)
    summary = {
        variant: {
            key: round(sum(p[key] for p in points if p["variant"] == variant) / args.repeat, 2)
            for key in ("rps", "cpu_us_per_request")
        }
        for variant in ("quiet", "polled")
    }
    ratio = summary["polled"]["cpu_us_per_request"] / summary["quiet"]["cpu_us_per_request"]
    json.dump(
        {"points": points, "summary": summary, "polled_over_quiet_cpu": round(ratio, 3),
         "master_cpu_us_per_call": cost, "pinning": pinning.describe()},
        sys.stdout, indent=2,
    )  # fmt: skip
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
