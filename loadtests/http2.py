#!/usr/bin/env python3
"""HTTP/2 over h2c (prior knowledge) with ``h2load``: swserve beside granian and hypercorn.

Two parts, each point a fresh server (2 workers) measured with h2load from nghttp2-client:

* **throughput**: hello (WSGI), Flask and FastAPI apps, ``-c`` connections with ``-m``
  concurrent streams each; req/s and the server tree's CPU µs per request (from /proc, with
  ``loadtests.run``'s helpers, imported, not copied);
* **mixed**: ``h2_mixed.py`` (``mixed.py``'s /fast 1 ms and /slow 50 ms, the slow one answering
  202) on few connections with many streams each, 1 slow in 10; the fast streams' p50/p99 from
  h2load's per-request log. In swserve the streams of one connection go to different workers;
  in the others all streams of a connection share the worker that accepted it.

swserve-base is swserve ``--mode base``: each worker serves the streams of its own connections.

Usage (from the repository root; granian and hypercorn installed in the same venv):

    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.http2
    flock /tmp/swserve-bench.lock .venv/bin/python -m loadtests.http2 --duration 3 --parts mixed
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from loadtests.run import HERE, HOST, READY_TIMEOUT_S, Pinning, PointError, session, tree_cpu

APPS: Final = HERE / "apps"
WORKERS: Final = 2
THROUGHPUT_APPS: Final = {
    "hello": ("hello_wsgi:app", "wsgi"),
    "flask": ("flask_json:app", "wsgi"),
    "fastapi": ("fastapi_json:app", "asgi"),
}
SERVERS: Final = ("swserve", "swserve-base", "granian", "hypercorn")
H2LOAD_RPS: Final = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")
H2LOAD_DONE: Final = re.compile(r"(\d+) succeeded, (\d+) failed, (\d+) errored")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def server_argv(name: str, app: str, interface: str, port: int) -> list[str]:
    bin_dir = Path(sys.executable).parent
    if name in ("swserve", "swserve-base"):
        mode = "base" if name == "swserve-base" else "process"
        return [
            sys.executable, "-m", "swserve", app, "--app-dir", str(APPS), "--http2", "on",
            "--bind", f"{HOST}:{port}", "--workers", str(WORKERS), "--threads", "1",
            "--mode", mode,
        ]  # fmt: skip
    if name == "granian":
        return [
            str(bin_dir / "granian"), "--interface", interface, "--http", "2", "--host", HOST,
            "--port", str(port), "--workers", str(WORKERS), "--blocking-threads", "1",
            "--working-dir", str(APPS), "--no-ws", app,
        ]  # fmt: skip
    return [
        str(bin_dir / "hypercorn"), "--bind", f"{HOST}:{port}", "--workers", str(WORKERS),
        "--root-path", "", app,
    ]  # fmt: skip


def wait_h2(port: int, proc: subprocess.Popen[Any], path: str) -> None:
    """Ready when an h2c request answers (h2load with one request)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PointError(f"server exited with code {proc.returncode}")
        out = subprocess.run(
            ["h2load", "-n", "1", f"http://{HOST}:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        if "1 succeeded" in out:
            return
        time.sleep(0.1)
    raise PointError("the server did not answer over h2c in time")


def h2load(
    pinning: Pinning, port: int, path: str, args: argparse.Namespace, extra: Sequence[str] = ()
) -> str:
    argv = [*pinning.load_prefix(), "h2load", "-D", f"{args.duration:g}", "-c"]
    argv += [str(args.connections), "-m", str(args.streams), "-t", "1", *extra]
    argv.append(f"http://{HOST}:{port}{path}")
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=args.duration + 60, check=False
    ).stdout


def point(
    name: str, app: str, interface: str, args: argparse.Namespace, pinning: Pinning, tmp: Path
) -> dict[str, Any]:
    """One point: fresh server, warm-up, measured run; ``mixed`` reads h2load's log."""
    port = free_port()
    argv = [*pinning.server_prefix(), *server_argv(name, app, interface, port)]
    log_path = tmp / f"{name}-{app.replace(':', '_')}.log"
    mixed = app.startswith("h2_mixed")
    req_log = tmp / f"{name}-mixed.tsv"
    probe = "/fast" if mixed else "/"
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    with (
        open(log_path, "w") as log,
        session(argv, stdout=log, stderr=subprocess.STDOUT, cwd=APPS, env=env) as proc,
    ):
        wait_h2(port, proc, probe)
        if args.warmup:
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            h2load(pinning, port, probe, warm)
        cpu_before, _ = tree_cpu(proc.pid)
        started = time.monotonic()
        if mixed:
            uris = tmp / "uris"
            base = f"http://{HOST}:{port}"
            uris.write_text("".join(f"{base}/{'slow' if i == 0 else 'fast'}\n" for i in range(10)))
            out = h2load(pinning, port, "", args, ["-i", str(uris), "--log-file", str(req_log)])
        else:
            out = h2load(pinning, port, probe, args)
        wall = time.monotonic() - started
        cpu_after, _ = tree_cpu(proc.pid)
    done = H2LOAD_DONE.search(out)
    rps = H2LOAD_RPS.search(out)
    if done is None or rps is None:
        raise PointError(f"{name} {app}: h2load said {out[-400:]!r}")
    ok, failed, errored = (int(g) for g in done.groups())
    result: dict[str, Any] = {
        "server": name,
        "app": app,
        "rps": float(rps.group(1)),
        "failed": failed + errored,
        "cpu_us_per_req": round((cpu_after - cpu_before) * 1e6 / ok, 1) if ok else None,
        "cores": round((cpu_after - cpu_before) / wall, 2),
    }
    if mixed:
        fast = sorted(
            int(us)
            for _, status, us in (line.split("\t")[:3] for line in req_log.read_text().splitlines())
            if status == "200"
        )
        if fast:
            result["fast_p50_ms"] = round(fast[len(fast) // 2] / 1000, 1)
            result["fast_p99_ms"] = round(fast[min(len(fast) - 1, len(fast) * 99 // 100)] / 1000, 1)
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=float, default=5.0, help="seconds per point")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up per point")
    add("--connections", type=int, default=4, help="h2load -c")
    add("--streams", type=int, default=32, help="h2load -m: concurrent streams per connection")
    add("--servers", default=",".join(SERVERS))
    add("--parts", default="throughput,mixed")
    add("--no-pin", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("h2load") is None:
        print("h2load is missing: apt-get install nghttp2-client", file=sys.stderr)
        return 1
    pinning = Pinning.choose(enabled=not args.no_pin)
    servers = [s for s in args.servers.split(",") if s]
    parts = args.parts.split(",")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swserve-h2-") as tmp:
        plan: list[tuple[str, str, str]] = []
        if "throughput" in parts:
            plan += [(app, iface, label) for label, (app, iface) in THROUGHPUT_APPS.items()]
        if "mixed" in parts:
            plan.append(("h2_mixed:app", "wsgi", "mixed"))
        for app, iface, label in plan:
            for name in servers:
                try:
                    row = point(name, app, iface, args, pinning, Path(tmp))
                except (PointError, subprocess.TimeoutExpired) as exc:
                    row = {"server": name, "app": label, "note": f"failed: {exc}"[:120]}
                row["app"] = label
                rows.append(row)
                print(row, file=sys.stderr)
    print(
        f"h2c prior knowledge, {WORKERS} workers x 1 thread, h2load -c {args.connections} "
        f"-m {args.streams}, {args.duration:g} s per point, pinning {pinning.describe()}, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| app | server | req/s | failed | CPU µs/req | fast p50 ms | fast p99 ms | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['app']} | {r['server']} | {r.get('rps', '-')} | {r.get('failed', '-')} "
            f"| {r.get('cpu_us_per_req', '-')} | {r.get('fast_p50_ms', '-')} "
            f"| {r.get('fast_p99_ms', '-')} | {r.get('note', '')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
