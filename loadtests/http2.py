#!/usr/bin/env python3
"""HTTP/2 over h2c (prior knowledge) with ``h2load``: swserve beside granian and hypercorn.

Two parts, every server with 2 workers, measured with h2load from nghttp2-client:

* **throughput**: hello (WSGI), Flask and FastAPI apps, ``h2load -c 4 -m 32`` (closed loop);
  req/s and the server tree's CPU µs per request (from /proc, with ``loadtests.run``'s helpers,
  imported, not copied). Bar (issue #16): swserve ≥ 3x hypercorn.
* **mixed**: ``h2_mixed.py`` (``mixed.py``'s /fast 1 ms and /slow 50 ms, the slow one answering
  202) on 2 connections, 1 slow stream in 10, paced by h2load's ``--rps`` at ``--rates`` req/s
  in total (the harness of ``run.py``'s open-loop ``mixed`` runs at the same 170 and 270 req/s:
  about 50 % and 80 % of what 2 workers of one thread can do); the fast streams' p50/p99 from
  h2load's per-request log. In swserve the streams of one connection go to whichever worker is
  idle; in the others all streams of a connection share the worker that accepted it. Bar:
  swserve's fast p99 ≤ 0.5x granian's.

swserve-base is swserve ``--mode base``: each worker serves the streams of its own connections.

For each app every server is started once and they take turns point by point (as
``static_files.py`` does), ``--repeat`` times: a noisy neighbour on a shared 2-core machine
then weighs on all of them alike. The anchors run from ``run.py``'s venv
(``loadtests/.venv-anchors``), with hypercorn added to it.

Usage (from the repository root):

    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.http2 --duration 3 --warmup 1
    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.http2 --parts mixed --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from loadtests import run as bench
from loadtests.run import HERE, HOST, READY_TIMEOUT_S, VENV_BIN, Pinning, PointError

APPS: Final = HERE / "apps"
WORKERS: Final = 2
# part label: (app, interface, probe path)
THROUGHPUT_APPS: Final = {
    "hello": ("hello_wsgi:app", "wsgi", "/"),
    "flask": ("flask_json:app", "wsgi", "/"),
    "fastapi": ("fastapi_json:app", "asgi", "/"),
}
MIXED_APP: Final = ("h2_mixed:app", "wsgi", "/fast")
MIXED_CONNECTIONS: Final = 2  # "few connections": what a proxy in front would hold open
MIXED_STREAMS: Final = 64  # room enough that --rps, not -m, sets the pace
SLOW_EVERY: Final = 10  # one slow stream in ten
SERVERS: Final = ("swserve", "swserve-base", "granian", "hypercorn")
SUBJECTS: Final = ("swserve", "swserve-base")
THROUGHPUT_BAR: Final = ("hypercorn", 3.0)  # req/s at least 3x the anchor's
MIXED_BAR: Final = ("granian", 0.5)  # fast-stream p99 at most 0.5x the anchor's
H2LOAD_RPS: Final = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")
H2LOAD_DONE: Final = re.compile(r"(\d+) succeeded, (\d+) failed, (\d+) errored")


def server_argv(name: str, app: str, interface: str, port: int) -> list[str]:
    if name in ("swserve", "swserve-base"):
        mode = "base" if name == "swserve-base" else "process"
        return [
            str(VENV_BIN / "swserve"), app, "--app-dir", str(APPS), "--http2", "on",
            "--bind", f"{HOST}:{port}", "--workers", str(WORKERS), "--threads", "1",
            "--mode", mode,
        ]  # fmt: skip
    if name == "granian":
        return [
            str(VENV_BIN / "granian"), "--interface", interface, "--http", "2", "--host", HOST,
            "--port", str(port), "--workers", str(WORKERS), "--blocking-threads", "1",
            "--working-dir", str(APPS), "--no-ws", "--log-level", "warning", app,
        ]  # fmt: skip
    if name == "hypercorn":
        return [
            str(VENV_BIN / "hypercorn"), "--bind", f"{HOST}:{port}", "--workers", str(WORKERS),
            "--root-path", "", app,
        ]  # fmt: skip
    raise ValueError(name)


def wait_h2(port: int, proc: subprocess.Popen[Any], path: str) -> None:
    """Ready when an h2c request answers (h2load with one request); bounded by a deadline."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PointError(f"server exited with code {proc.returncode}")
        out = subprocess.run(
            ["h2load", "-n", "1", f"http://{HOST}:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        if "1 succeeded" in out:
            return
        time.sleep(0.1)
    raise PointError("the server did not answer over h2c in time")


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[Any]
    port: int
    argv: list[str]
    log_path: Path


@contextlib.contextmanager
def started(
    name: str, app: tuple[str, str, str], pinning: Pinning, tmp: Path
) -> Iterator[Running | None]:
    """Start one server and wait until it answers over h2c; None (logged) if it cannot."""
    target, interface, probe = app
    port = bench.free_port()
    argv = server_argv(name, target, interface, port)
    log_path = tmp / f"{name}-{target.replace(':', '_')}.log"
    # the mixed app imports mixed.py from its directory; every server runs from loadtests/apps
    env = {
        **bench.server_env(),
        "PYTHONPATH": f"{APPS}{os.pathsep}{bench.server_env()['PYTHONPATH']}",
    }
    with (
        log_path.open("w") as out,
        bench.session(
            [*pinning.server_prefix(), *argv], stdout=out, stderr=subprocess.STDOUT, cwd=APPS,
            env=env,
        ) as proc,
    ):  # fmt: skip
        try:
            wait_h2(port, proc, probe)
        except (PointError, subprocess.TimeoutExpired) as exc:
            bench.log(f"{name} {target}: {exc}\n{log_path.read_text(errors='replace')[-800:]}")
            yield None
            return
        yield Running(name, proc, port, argv, log_path)


def h2load(pinning: Pinning, url: str, duration: float, opts: Sequence[str]) -> str:
    argv = [*pinning.load_prefix(), "h2load", "-D", f"{duration:g}", "-t", "1", *opts, url]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 60, check=False
    ).stdout


@dataclass
class Point:
    server: str
    part: str  # hello, flask, fastapi, or mixed-<rate>
    repeat: int
    rps: float | None = None
    succeeded: int = 0
    failed: int = 0
    cpu_us_per_req: float | None = None
    cores: float | None = None
    fast_p50_ms: float | None = None
    fast_p99_ms: float | None = None
    slow_p99_ms: float | None = None
    failure: str = ""


def _percentile(values: list[int], q: int) -> float:
    return values[min(len(values) - 1, len(values) * q // 100)] / 1000


def measure(
    server: Running, part: str, rate: float | None, args: argparse.Namespace, pinning: Pinning,
    tmp: Path, repeat: int,
) -> Point:  # fmt: skip
    """One point: warm-up (not measured), then ``args.duration`` seconds measured.

    ``rate`` None: closed loop on the probe path. Else the mixed part: 1 slow stream in 10 on
    ``MIXED_CONNECTIONS`` connections paced at ``rate`` req/s in total, every response logged.
    """
    point = Point(server.name, part, repeat)
    base = f"http://{HOST}:{server.port}"
    closed = ["-c", str(args.connections), "-m", str(args.streams)]
    if rate is None:
        url, opts, req_log = f"{base}/", closed, None
    else:
        uris = tmp / "uris"
        paths = ["/slow", *["/fast"] * (SLOW_EVERY - 1)]
        uris.write_text("".join(f"{base}{p}\n" for p in paths))
        req_log = tmp / f"{server.name}-{part}-{repeat}.tsv"
        url = ""
        opts = ["-c", str(MIXED_CONNECTIONS), "-m", str(MIXED_STREAMS), "-i", str(uris)]
        opts += ["--rps", f"{rate / MIXED_CONNECTIONS:g}", "--log-file", str(req_log)]
    if args.warmup:
        h2load(pinning, f"{base}{'/' if rate is None else '/fast'}", args.warmup, closed)
    cpu_before, _ = bench.tree_cpu(server.proc.pid)
    started_at = time.monotonic()
    out = h2load(pinning, url, args.duration, opts)
    wall = time.monotonic() - started_at
    cpu = bench.tree_cpu(server.proc.pid)[0] - cpu_before
    done, rps = H2LOAD_DONE.search(out), H2LOAD_RPS.search(out)
    if done is None or rps is None:
        point.failure = f"h2load said {out[-300:]!r}"
        bench.log(f"{server.name} {part}: {point.failure}")
        return point
    ok, failed, errored = (int(g) for g in done.groups())
    point.rps, point.succeeded, point.failed = float(rps.group(1)), ok, failed + errored
    point.cpu_us_per_req = round(cpu * 1e6 / ok, 1) if ok else None
    point.cores = round(cpu / wall, 2)
    if req_log is not None:
        by_status: dict[str, list[int]] = {"200": [], "202": []}
        for line in req_log.read_text().splitlines():
            _, status, us = line.split("\t")[:3]
            by_status.setdefault(status, []).append(int(us))
        fast, slow = sorted(by_status["200"]), sorted(by_status["202"])
        if fast:
            point.fast_p50_ms = _percentile(fast, 50)
            point.fast_p99_ms = _percentile(fast, 99)
        if slow:
            point.slow_p99_ms = _percentile(slow, 99)
    bench.log(
        f"{server.name:13} {part:12} {point.rps:9.0f} req/s  failed {point.failed:4}  "
        f"{point.cpu_us_per_req or 0:8.1f} µs CPU/req  {point.cores:4.2f} cores"
        + (f"  fast p50 {point.fast_p50_ms} ms p99 {point.fast_p99_ms} ms" if rate else "")
    )
    return point


def median(points: list[Point], server: str, part: str, key: str) -> float | None:
    values = [
        getattr(p, key)
        for p in points
        if p.server == server and p.part == part and not p.failure and getattr(p, key) is not None
    ]
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(points: list[Point], servers: list[str], parts: list[str]) -> list[str]:
    """Medians over repeats per (part, server), ratios of swserve and swserve-base, the bars."""
    lines = [
        "| part | server | req/s | failed | CPU µs/req | fast p50 ms | fast p99 ms "
        "| slow p99 ms | swserve/x | base/x |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bars: list[str] = []
    for part in parts:
        mixed = part.startswith("mixed")
        key = "fast_p99_ms" if mixed else "rps"
        for server in servers:
            value = median(points, server, part, key)
            ratios = []
            for subject in SUBJECTS:
                ours = median(points, subject, part, key)
                ok = ours and value and server not in SUBJECTS
                ratios.append(f"{ours / value:.2f}x" if ok else "")  # type: ignore[operator]
            failed = sum(p.failed for p in points if p.server == server and p.part == part)
            lines.append(
                f"| {part} | {server} | {_fmt(median(points, server, part, 'rps'), 0)} "
                f"| {failed} | {_fmt(median(points, server, part, 'cpu_us_per_req'))} "
                f"| {_fmt(median(points, server, part, 'fast_p50_ms'))} "
                f"| {_fmt(median(points, server, part, 'fast_p99_ms'))} "
                f"| {_fmt(median(points, server, part, 'slow_p99_ms'))} "
                f"| {ratios[0]} | {ratios[1]} |"
            )
        anchor, bound = MIXED_BAR if mixed else THROUGHPUT_BAR
        theirs = median(points, anchor, part, key)
        for subject in SUBJECTS:
            ours = median(points, subject, part, key)
            if ours is None or not theirs:
                continue
            ratio = ours / theirs
            holds = ratio <= bound if mixed else ratio >= bound
            what = "fast p99" if mixed else "req/s"
            bars.append(
                f"- {part}: {subject} {what} {'≤' if mixed else '≥'} {bound}x {anchor}: "
                f"{ratio:.2f}x ({'holds' if holds else 'MISSED'})"
            )
    failures = [f"- {p.server} {p.part} #{p.repeat}: {p.failure}" for p in points if p.failure]
    return [*lines, "", *bars, *(["", *failures] if failures else [])]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=float, default=5.0, help="seconds per point (5)")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up per point (1)")
    add("--repeat", type=int, default=1, help="points per server and part, taking turns (1)")
    add("--connections", type=int, default=4, help="throughput: h2load -c (4)")
    add("--streams", type=int, default=32, help="throughput: h2load -m per connection (32)")
    add("--rates", default="170,270", help="mixed: total req/s over both connections")
    add("--servers", default=",".join(SERVERS))
    add("--parts", default="throughput,mixed", help="throughput, mixed, or an app (hello, ...)")
    add("--no-install", action="store_true", help="use the anchors venv as it is")
    add("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    for name in args.servers.split(","):
        if name not in SERVERS:
            parser.error(f"unknown server {name!r} (one of {', '.join(SERVERS)})")
    return args


def plan(args: argparse.Namespace) -> list[tuple[tuple[str, str, str], list[tuple[str, Any]]]]:
    """(app, [(part label, rate or None), ...]) for every app the selected parts need."""
    parts = args.parts.split(",")
    out: list[tuple[tuple[str, str, str], list[tuple[str, Any]]]] = []
    for label, app in THROUGHPUT_APPS.items():
        if "throughput" in parts or label in parts:
            out.append((app, [(label, None)]))
    if "mixed" in parts:
        rates = [float(r) for r in args.rates.split(",") if r]
        out.append((MIXED_APP, [(f"mixed-{r:g}", r) for r in rates]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("h2load") is None:
        print("h2load is missing: apt-get install nghttp2-client", file=sys.stderr)
        return 1
    missing = bench.ensure_venv(no_install=args.no_install, with_swserve=True)
    if missing:
        raise SystemExit(missing)
    if not args.no_install and not (VENV_BIN / "hypercorn").exists():
        result = bench.pip_install("hypercorn", "h2")  # h2: swserve's [http2] extra
        if result.returncode != 0:
            raise SystemExit(f"pip could not install hypercorn:\n{result.stderr[-600:]}")
    pinning = Pinning.choose(enabled=not args.no_pin)
    servers = [s for s in args.servers.split(",") if s]
    points: list[Point] = []
    labels: list[str] = []
    with tempfile.TemporaryDirectory(prefix="swserve-h2-") as tmp:
        for app, parts in plan(args):
            labels += [label for label, _ in parts]
            # Every server of this app runs for the app's whole run (idle but for its turn),
            # and they take turns point by point: noise then weighs on all of them alike.
            with contextlib.ExitStack() as stack:
                running = [
                    stack.enter_context(started(name, app, pinning, Path(tmp))) for name in servers
                ]
                for name, run in zip(servers, running, strict=True):
                    if run is None:
                        points += [
                            Point(name, label, 0, failure="did not start") for label, _ in parts
                        ]
                for repeat in range(args.repeat):
                    for label, rate in parts:
                        points += [
                            measure(run, label, rate, args, pinning, Path(tmp), repeat)
                            for run in running
                            if run is not None
                        ]
    header = (
        f"h2c prior knowledge, {WORKERS} workers x 1 thread; throughput: h2load -c "
        f"{args.connections} -m {args.streams}; mixed: -c {MIXED_CONNECTIONS} -m {MIXED_STREAMS} "
        f"--rps (total {args.rates} req/s), 1 slow in {SLOW_EVERY}; {args.duration:g} s per "
        f"point, {args.repeat} repeat(s), pinning {pinning.describe()}, load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    lines = [header, "", *report(points, servers, labels)]
    print("\n".join(lines))
    bench.RESULTS_DIR.mkdir(exist_ok=True)
    out = bench.RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S-http2.json")
    payload = {"argv": sys.argv, "header": header, "points": [asdict(p) for p in points]}
    out.write_text(json.dumps(payload, indent=1))
    bench.log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
