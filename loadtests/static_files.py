#!/usr/bin/env python3
"""Static files: swserve's reactor beside nginx, granian and WhiteNoise under gunicorn.

Three files (1 KiB, 64 KiB and 10 MiB of random bytes) in a temporary directory, each fetched
with wrk (one thread, ``--connections`` keep-alive connections) from every server in turn:

=====================  ===================================================================
swserve                process mode, ``--static /static=DIR``, 1 worker (never woken)
swserve-base           the same in base mode (the worker's loop serves the files)
nginx                  Debian's nginx-light, 1 worker process, ``sendfile on``
granian                ``--static-path-mount DIR``, 1 worker, WSGI hello app behind it
whitenoise-gunicorn    WhiteNoise around a WSGI hello app, gunicorn sync worker, 1 worker
=====================  ===================================================================

For each point: req/s (wrk; for 10 MiB a client of our own, see ``run_bulk``), and the CPU the server's whole process tree used during the run
per request (user+sys from /proc, in µs).  Servers and wrk are pinned as ``loadtests.run`` pins them
(wrk on the first CPU, servers on the others, on 2-4 CPU machines).  The anchors come from
``loadtests.run``'s venv (``loadtests/.venv-anchors``), with ``whitenoise`` added to it.

    flock /tmp/swserve-bench.lock python3 -m loadtests.static_files --duration 5 --repeat 1
    python3 -m loadtests.static_files --servers swserve,nginx --sizes 10m

Ratios to the anchors measured in the same run are what counts; the bars (issue #15):
swserve ≥ 1.0x granian and ≥ 3x WhiteNoise-under-gunicorn on every size, ≥ 0.5x nginx on 10 MiB.
Each is checked by req/s and by CPU per request: on a busy machine a server gets a share of
its CPU, and req/s follows the share (the ``cores`` column); CPU per request does not.  The
load generator's own CPU is reported too (``client cores``), to show it is not the limit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from loadtests.run import (
    HOST,
    RESULTS_DIR,
    SWSERVE_PORT,
    VENV_BIN,
    Pinning,
    PointError,
    ensure_venv,
    free_port,
    log,
    pip_install,
    run_wrk,
    server_env,
    session,
    tree_ticks,
    wait_ready,
)

SIZES: Final = {"1k": 1024, "64k": 64 * 1024, "10m": 10 * 1024 * 1024, "10m-slow": 10 << 20}
# 10m-slow: the 10 MiB file again, fetched by SLOW_CONNECTIONS clients that each read at
# SLOW_RATE, as clients on real networks do: what it costs a server to hold a download open
FILES: Final = {"10m-slow": "10m"}
SLOW_CONNECTIONS: Final = 32
SLOW_RATE: Final = 8 * 1024 * 1024  # bytes per second per client
SERVERS: Final = ("swserve", "swserve-base", "nginx", "granian", "whitenoise-gunicorn")
SUBJECTS: Final = ("swserve", "swserve-base")
# issue #15's bars: (anchor, sizes, least ratio of req/s)
BARS: Final = (
    ("granian", ("1k", "64k", "10m"), 1.0),
    ("whitenoise-gunicorn", ("1k", "64k", "10m"), 3.0),
    ("nginx", ("10m",), 0.5),
)
NGINX_CONF: Final = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    default_type application/octet-stream;
    server {{
        listen {host}:{port};
        location /static/ {{ alias {root}/; }}
    }}
}}
"""


@dataclass
class Point:
    server: str
    size: str
    repeat: int
    rps: float | None = None
    requests: int | None = None
    cpu_us_per_req: float | None = None
    errors: int | None = None
    client: str = ""
    first_error: str = ""  # bulk: what the first failed fetch raised
    server_cores: float | None = None  # its CPU seconds per second: under 1, it waited for work
    client_cores: float | None = None  # the load generator's (wrk, or bulk's threads)
    argv: list[str] = field(default_factory=list)
    failure: str = ""


def make_files(root: Path) -> None:
    for name, size in SIZES.items():
        if name not in FILES:
            (root / f"f{name}.bin").write_bytes(os.urandom(size))


def server_argv(name: str, root: Path, port: int, tmp: Path) -> list[str]:
    static = ["--static", f"/static={root}"]
    swserve = [str(VENV_BIN / "swserve"), "loadtests.apps.hello_wsgi:app"]
    swserve += ["--bind", f"{HOST}:0", "--workers", "1", *static]
    if name == "swserve":
        return swserve
    if name == "swserve-base":
        return [*swserve, "--mode", "base"]
    if name == "nginx":
        conf = tmp / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, host=HOST, port=port, root=root))
        return ["nginx", "-p", str(tmp), "-c", str(conf)]
    if name == "granian":
        return [
            *(str(VENV_BIN / "granian"), "--interface", "wsgi", "--host", HOST),
            *("--port", str(port), "--workers", "1", "--http", "1", "--no-access-log"),
            *("--log-level", "warning", "--static-path-route", "/static"),
            *("--static-path-mount", str(root), "loadtests.apps.hello_wsgi:app"),
        ]
    if name == "whitenoise-gunicorn":
        return [
            *(str(VENV_BIN / "gunicorn"), "loadtests.apps.static_whitenoise:app"),
            *("--bind", f"{HOST}:{port}", "--workers", "1", "--worker-class", "sync"),
            *("--log-level", "warning", "--no-control-socket"),
        ]
    raise ValueError(name)


# The 10 MiB point with wrk measures wrk: it reads every body in 8 KiB pieces, and a server
# that sends 500 MB/s keeps its one core busy.  ``bulk`` fetches with keep-alive connections in
# threads and discards each body in the kernel (MSG_TRUNC: TCP drops the bytes without copying
# them to user space), so the server is what runs out first.
BULK_SIZES: Final = frozenset({"10m", "10m-slow"})
BULK_CONNECTIONS: Final = 8
TRUNC_PIECE: Final = 16 * 1024 * 1024


class BulkResult:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.first_error = ""
        self.lock = threading.Lock()


def _bulk_worker(
    port: int, path: bytes, size: int, deadline: float, out: BulkResult, rate: int
) -> None:
    request = b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n"
    scratch = bytearray(TRUNC_PIECE)
    done = errors = 0
    sock: socket.socket | None = None
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                head += chunk
            status_ok = head.startswith(b"HTTP/1.1 200")
            head, rest = head.split(b"\r\n\r\n", 1)
            if b"\r\ntransfer-encoding: chunked" in head.lower():  # granian's static files
                _drop_chunked(sock, rest, scratch, rate)
            else:
                _drop(sock, size - len(rest), scratch, rate)
            if status_ok:
                done += 1
            else:
                errors += 1
                if not out.first_error:
                    out.first_error = head.split(b"\r\n", 1)[0].decode("latin-1")
            if b"\r\nconnection: close" in head.lower():  # gunicorn's sync worker
                sock.close()
                sock = None
        except OSError as exc:
            errors += 1
            if not out.first_error:
                out.first_error = repr(exc)
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()
    with out.lock:
        out.requests += done
        out.errors += errors


def _drop(sock: socket.socket, left: int, scratch: bytearray, rate: int = 0) -> None:
    """Discard ``left`` bytes of the socket in the kernel (at ``rate`` bytes/s at most)."""
    piece = TRUNC_PIECE if not rate else max(rate // 20, 1)
    start = time.monotonic()
    done = 0
    while left > 0:
        n = sock.recv_into(scratch, min(left, piece), socket.MSG_TRUNC)
        if not n:
            raise ConnectionError("closed mid-body")
        left -= n
        if rate:
            done += n
            ahead = done / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def _drop_chunked(sock: socket.socket, buf: bytes, scratch: bytearray, rate: int) -> None:
    """Discard a chunked body: size lines read, chunk data dropped in the kernel."""
    while True:
        while b"\r\n" not in buf:
            more = sock.recv(64)
            if not more:
                raise ConnectionError("closed in a chunk head")
            buf += more
        line, buf = buf.split(b"\r\n", 1)
        need = int(line.split(b";")[0], 16) + 2  # the data and its CRLF
        if need == 2:  # the last chunk: its CRLF (no trailers here)
            while len(buf) < 2:
                more = sock.recv(2 - len(buf))
                if not more:
                    raise ConnectionError("closed in the last chunk")
                buf += more
            return
        taken = min(len(buf), need)
        buf = buf[taken:]
        _drop(sock, need - taken, scratch, rate)


def run_bulk(
    port: int,
    path: str,
    size: int,
    duration_s: int,
    pinning: Pinning,
    connections: int = BULK_CONNECTIONS,
    rate: int = 0,
) -> BulkResult:
    """``connections`` threads fetching ``path`` for ``duration_s`` on the load CPUs, each
    reading at ``rate`` bytes/s (0: as fast as it can)."""
    previous = os.sched_getaffinity(0)
    if pinning.load_cpus:
        os.sched_setaffinity(0, pinning.load_cpus)
    out = BulkResult()
    deadline = time.monotonic() + duration_s
    threads = [
        threading.Thread(target=_bulk_worker, args=(port, path.encode(), size, deadline, out, rate))
        for _ in range(connections)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(duration_s + 30)
    finally:
        os.sched_setaffinity(0, previous)
    return out


def fetch(
    point: Point,
    port: int,
    path: str,
    size: int,
    seconds: int,
    bulk: bool,
    connections: int,
    pinning: Pinning,
) -> None:
    """One measured run against ``path``: wrk, or the bulk client; fills ``point``."""
    if bulk:
        started = time.monotonic()
        slow = point.size in FILES
        fetched = run_bulk(
            port,
            path,
            size,
            seconds,
            pinning,
            SLOW_CONNECTIONS if slow else BULK_CONNECTIONS,
            SLOW_RATE if slow else 0,
        )
        point.rps = fetched.requests / (time.monotonic() - started)
        point.requests = fetched.requests
        point.errors = fetched.errors
        point.first_error = fetched.first_error
        return
    url = f"http://{HOST}:{port}{path}"
    result, _ = run_wrk(
        url, duration_s=seconds, connections=connections, script=None, pinning=pinning
    )
    point.rps = result.rps
    point.requests = result.requests
    point.errors = result.non_2xx_3xx + sum(result.socket_errors.values())


@dataclass
class Running:
    """One server started for the whole run."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    argv: list[str]


@contextlib.contextmanager
def started(name: str, root: Path, pinning: Pinning) -> Iterator[Running | None]:
    """Start one server and wait until it serves the 1 KiB file; None if it cannot."""
    tmp = Path(tempfile.mkdtemp(prefix=f"static-{name}-"))
    port = 0 if name in SUBJECTS else free_port()
    argv = server_argv(name, root, port, tmp)
    env = {**server_env(), "STATIC_DIR": str(root)}
    logfile = tmp / "server.log"
    try:
        with (
            logfile.open("w") as out,
            session(
                [*pinning.server_prefix(), *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
            ) as proc,
        ):
            try:
                port = wait_ready(proc, logfile, port, SWSERVE_PORT, "/static/f1k.bin", 30.0)
            except PointError as exc:
                log(f"{name}: {exc}\n{logfile.read_text(errors='replace')[-800:]}")
                yield None
                return
            log(f"{name}: pid {proc.pid}, port {port}")  # for py-spy/perf/strace -p
            yield Running(name, proc, port, argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(
    server: Running, size: str, args: argparse.Namespace, pinning: Pinning, repeat: int
) -> Point:
    """One point: a 1 s warm-up, then ``args.duration`` seconds measured."""
    path = f"/static/f{FILES.get(size, size)}.bin"
    bulk = size in BULK_SIZES and not args.wrk_only
    pid = server.proc.pid
    point = Point(server.name, size, repeat, argv=server.argv, client="bulk" if bulk else "wrk")
    try:
        fetch(Point(server.name, size, -1), server.port, path, SIZES[size], 1, bulk,
              args.connections, pinning)  # fmt: skip
        before = tree_ticks(pid)[0]
        client_before = _client_cpu(bulk)
        start = time.monotonic()
        fetch(point, server.port, path, SIZES[size], args.duration, bulk, args.connections,
              pinning)  # fmt: skip
        used = tree_ticks(pid)[0] - before
        point.client_cores = (_client_cpu(bulk) - client_before) / (time.monotonic() - start)
    except PointError as exc:
        point.failure = str(exc)
        log(f"{server.name} {size}: {exc}")
        return point
    point.server_cores = used / (time.monotonic() - start)
    if point.requests:
        point.cpu_us_per_req = used / point.requests * 1e6
    log(
        f"{server.name:20} {size:>8}  {point.rps or 0:10.0f} req/s  "
        f"{point.cpu_us_per_req or 0:8.1f} µs CPU/req  "
        f"{point.server_cores or 0:4.2f} cores (client {point.client_cores or 0:4.2f})  "
        f"errors {point.errors} {point.first_error}"
    )
    return point


def _client_cpu(bulk: bool) -> float:
    """CPU seconds the load generator has used: the bulk client's threads are this process;
    wrk is a child, counted once it has been waited for (the servers never are mid-run)."""
    usage = resource.getrusage(resource.RUSAGE_SELF if bulk else resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median(points: list[Point], server: str, size: str, key: str) -> float | None:
    values = [
        getattr(p, key) for p in points if p.server == server and p.size == size and not p.failure
    ]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(points: list[Point], servers: list[str], sizes: list[str]) -> list[str]:
    """The table (medians over the repeats), then each bar twice: req/s, which follows the
    share of the CPU a server got, and CPU per request, which does not (see the README)."""
    lines = [
        "| server | size | req/s | CPU µs/req | cores | client cores "
        "| req/s swserve/x | base/x | CPU x/swserve | x/base |"
    ]
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for server in servers:
            rps = median(points, server, size, "rps")
            cpu = median(points, server, size, "cpu_us_per_req")
            cores = median(points, server, size, "server_cores")
            client = median(points, server, size, "client_cores")
            cells = []
            for key in ("rps", "cpu_us_per_req"):
                for subject in SUBJECTS:
                    ours, theirs = (
                        median(points, subject, size, key),
                        median(points, server, size, key),
                    )
                    ratio = _ratio(ours, theirs) if key == "rps" else _ratio(theirs, ours)
                    cells.append("" if server in SUBJECTS or ratio is None else f"{ratio:.2f}x")
            lines.append(
                f"| {server} | {size} | {rps or 0:.0f} | {cpu or 0:.1f} | {cores or 0:.2f} "
                f"| {client or 0:.2f} | {' | '.join(cells)} |"
            )
    lines.append("")
    for anchor, bar_sizes, least in BARS:
        for size in bar_sizes:
            if size not in sizes or anchor not in servers:
                continue
            for subject in SUBJECTS:
                by_rps = _ratio(
                    median(points, subject, size, "rps"), median(points, anchor, size, "rps")
                )
                by_cpu = _ratio(
                    median(points, anchor, size, "cpu_us_per_req"),
                    median(points, subject, size, "cpu_us_per_req"),
                )
                if by_rps is None or by_cpu is None:
                    continue
                lines.append(
                    f"- bar {subject} ≥ {least}x {anchor} on {size}: req/s {by_rps:.2f}x "
                    f"({_verdict(by_rps, least)}), CPU per request {by_cpu:.2f}x "
                    f"({_verdict(by_cpu, least)})"
                )
    return lines


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top and bottom else None


def _verdict(share: float, least: float) -> str:
    return "holds" if share >= least else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--duration", type=int, default=5, help="seconds per point (5)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--wrk-only", action="store_true", help="wrk for 10 MiB too (it measures wrk, mostly)"
    )
    args = parser.parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    sizes = [s for s in args.sizes.split(",") if s]
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r} (one of {', '.join(SERVERS)})")
    for size in sizes:
        if size not in SIZES:
            parser.error(f"unknown size {size!r} (one of {', '.join(SIZES)})")
    missing = ensure_venv(no_install=args.no_install, with_swserve=True)
    if missing:
        raise SystemExit(missing)
    if "whitenoise-gunicorn" in servers and not args.no_install:
        result = pip_install("whitenoise")
        if result.returncode != 0:
            raise SystemExit(f"pip could not install whitenoise:\n{result.stderr[-600:]}")
    pinning = Pinning.choose(enabled=not args.no_pin)
    log(f"pinning: {pinning.describe()}")
    root = Path(tempfile.mkdtemp(prefix="static-files-"))
    points: list[Point] = []
    try:
        make_files(root)
        # Every server runs for the whole run (idle but for its turn), and they take turns
        # point by point: a noisy neighbour on a shared machine then weighs on all of them
        # alike, rather than on whichever was being measured while it ran.
        with contextlib.ExitStack() as stack:
            running = [stack.enter_context(started(name, root, pinning)) for name in servers]
            for repeat in range(args.repeat):
                for size in sizes:
                    points.extend(
                        measure(server, size, args, pinning, repeat)
                        for server in running
                        if server is not None
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = report(points, servers, sizes)
    print("\n".join(lines))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S-static-files.json")
    out.write_text(
        json.dumps(
            {
                "argv": sys.argv,
                "pinning": pinning.describe(),
                "points": [asdict(p) for p in points],
            },
            indent=1,
        )
    )
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
