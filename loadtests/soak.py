"""Soak: a million requests with reloads and recycles, then 10,000 connections in waves.

Phase 1: wrk keep-alive load in slices until ``--requests`` are served, with a SIGHUP
(reload) every ``--reload-every`` s and ``--max-requests`` recycling workers all the
time.  Phase 2: ``--waves`` times, open ``--connections`` keep-alive connections
(``loadtests/many_conns.py``: one asyncio client over raw sockets, so 10,000 are
really held at once; the first soak's client topped out near 1,300), hold them all
for ``--hold`` s while each sends ``--hold-requests`` more requests, close them all.
The server's side is counted too: the fds of the master and reactors while a wave
is held (``server_fds_held``, at least ``--connections`` over the baseline).

Open file descriptors and RSS of the master, the manager and every reactor process
are sampled every ``--sample-every`` s (the workers are replaced all the time: what
must not grow is what outlives them).  The verdict is the least-squares slope of each
series after a warm-up: flat means ``|slope|`` under the tolerance (``--fd-slope``
fds per minute, ``--rss-slope`` KiB per minute).  After every wave, the master's fds
must be back to their count before the waves.  The waves are judged apart: the fds
of every watched process back at their count after each wave, and the slope of its
RSS across the after-wave samples from the second wave on (the first one grows the
buffers); the every-``--sample-every`` s series of the waves phase are reported.

    flock /tmp/swserve-bench.lock nice python3 -m loadtests.soak            # ~1e6 requests
    python3 -m loadtests.soak --requests 100000 --waves 2 --connections 2000   # shorter
    python3 -m loadtests.soak --requests 0 --waves 6 -- --reactors 2          # waves only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loadtests.chaos import session_pids

REPO = Path(__file__).resolve().parent.parent
APP = "loadtests.apps.hello_wsgi:app"
TITLES = ("swserve: master", "swserve: manager", "swserve: reactor")


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y), per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, new), hard))
    return new


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        limit = raise_nofile(2 * args.connections + 1000)  # ours; the server inherits it
        self.log = tempfile.NamedTemporaryFile(prefix="soak-", suffix=".log")  # noqa: SIM115
        argv = [sys.executable, "-m", "swserve", APP, "--bind", "127.0.0.1:0",
                "--workers", str(args.workers), "--max-requests", str(args.max_requests),
                "--max-connections", str(args.connections + 100), "--backlog", "4096",
                "--keep-alive", str(2 * args.hold + 10), *args.extra]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
        )
        self.nofile = limit
        deadline = time.monotonic() + 30
        while not (m := re.search(r"Listening on http://127\.0\.0\.1:(\d+)", self.text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"swserve did not start:\n{self.text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(m.group(1))
        self.samples: list[dict[str, Any]] = []
        self.start = time.monotonic()
        self.stop_event = threading.Event()
        self.reloads = 0

    def text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def watched(self) -> dict[int, str]:
        titles = session_pids(self.proc.pid)
        return {pid: t for pid, t in titles.items() if t.startswith(TITLES)}

    def sample(self, phase: str) -> None:
        now = time.monotonic() - self.start
        for pid, title in self.watched().items():
            self.samples.append(
                {
                    "t": now,
                    "phase": phase,
                    "pid": pid,
                    "title": title,
                    "fds": fds(pid),
                    "rss_kib": rss_kib(pid),
                }
            )

    def sampler(self, phase: list[str]) -> None:
        while not self.stop_event.wait(self.args.sample_every):
            self.sample(phase[0])

    def reloader(self) -> None:
        while not self.stop_event.wait(self.args.reload_every):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGHUP)
                self.reloads += 1

    def load(self) -> int:
        """wrk in slices until the requests are served; → requests served (2xx and others)."""
        total, errors = 0, 0
        self.errors = 0
        while total < self.args.requests:
            out = subprocess.run(
                ["wrk", "-t1", "-c64", f"-d{self.args.slice}s", f"http://127.0.0.1:{self.port}/"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            m = re.search(r"(\d+) requests in", out)
            total += int(m.group(1)) if m else 0
            e = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            errors += int(e.group(1)) if e else 0
            s = re.search(
                r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
            )
            if s:
                errors += sum(int(x) for x in s.groups())
            print(f"  {total} requests, {self.reloads} reloads, {errors} errors", flush=True)
        self.errors = errors
        return total

    def server_fds(self) -> int:
        """Descriptors of the processes that hold client connections (master, reactors)."""
        return sum(
            fds(pid)
            for pid, title in self.watched().items()
            if title.startswith(("swserve: master", "swserve: reactor"))
        )

    def settle(self, before: dict[int, int], timeout: float = 30.0) -> dict[int, int]:
        """Wait until every watched process is back to its fds of ``before``; → fds now."""
        deadline = time.monotonic() + timeout
        while True:
            now = {pid: fds(pid) for pid in self.watched()}
            back = all(now.get(pid, 0) <= count for pid, count in before.items())
            if back or time.monotonic() > deadline:
                return now
            time.sleep(0.05)

    def waves(self) -> list[dict[str, Any]]:
        args = self.args
        base = {pid: fds(pid) for pid in self.watched()}
        base_server = self.server_fds()
        out = []
        for wave in range(args.waves):
            client = subprocess.Popen(
                [sys.executable, "-m", "loadtests.many_conns", "--port", str(self.port),
                 "--connections", str(args.connections), "--hold", str(args.hold),
                 "--requests", str(args.hold_requests), "--seed", str(wave)],
                stdout=subprocess.PIPE, text=True, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )  # fmt: skip
            assert client.stdout is not None
            held_line = client.stdout.readline().strip()  # "held N", once all are open
            held = self.server_fds() - base_server
            self.sample("wave-held")
            tail = client.stdout.read()
            client.wait(args.hold + 180)
            try:
                report = json.loads(tail.strip().splitlines()[-1])
            except (ValueError, IndexError):
                report = {"error": f"no report from the client: {held_line!r} {tail[-300:]!r}"}
            after = self.settle(base)
            self.sample("wave-after")
            row = {"wave": wave, "client": report, "client_held": held_line,
                   "server_fds_held": held, "fds_before": base, "fds_after": after}  # fmt: skip
            out.append(row)
            print(f"  wave {wave}: {held_line}; server fds +{held}; client {report}; "
                  f"fds after {sum(after.values())} (before {sum(base.values())})", flush=True)  # fmt: skip
        return out

    def run(self) -> dict[str, Any]:
        phase = ["load"]
        sampler = threading.Thread(target=self.sampler, args=(phase,), daemon=True)
        reloader = threading.Thread(target=self.reloader, daemon=True)
        self.sample("start")
        sampler.start()
        reloader.start()
        served = self.load()
        phase[0] = "waves"
        waves = self.waves()
        self.stop_event.set()
        self.sample("end")
        log_text = self.text()
        code = self.stop()
        return {"requests": served, "errors": self.errors, "reloads": self.reloads,
                "recycles": len(re.findall(r"max-requests", log_text)),
                "waves": waves, "samples": self.samples, "exit_code": code,
                "nofile": self.nofile, "verdict": self.verdict(waves)}  # fmt: skip

    def verdict(self, waves: list[dict[str, Any]]) -> dict[str, Any]:
        args = self.args
        by: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for s in self.samples:
            if s["phase"] == "load" and s["t"] >= args.warmup:
                by.setdefault((s["title"], s["pid"]), []).append(s)
        series = {}
        ok = True
        for (title, pid), rows in by.items():
            fd_slope = slope([(r["t"], r["fds"]) for r in rows]) * 60
            rss_slope = slope([(r["t"], r["rss_kib"]) for r in rows]) * 60
            flat = abs(fd_slope) <= args.fd_slope and rss_slope <= args.rss_slope
            ok &= flat
            series[f"{title} ({pid})"] = {
                "samples": len(rows),
                "fds_per_min": round(fd_slope, 4),
                "rss_kib_per_min": round(rss_slope, 1),
                "fds": [rows[0]["fds"], rows[-1]["fds"]],
                "rss_kib": [rows[0]["rss_kib"], rows[-1]["rss_kib"]],
                "flat": flat,
            }
        waves_ok = all(
            all(w["fds_after"].get(pid, 0) <= n for pid, n in w["fds_before"].items())
            for w in waves
        )
        held_ok = all(
            w["client"].get("peak_open") == args.connections
            and not w["client"].get("errors")
            and w["server_fds_held"] >= args.connections
            for w in waves
        )
        wave_series = self.wave_slopes()
        rss_ok = all(s["rss_kib_per_wave"] <= args.rss_per_wave for s in wave_series.values())
        return {"series": series, "wave_series": wave_series,
                "waves_back_to_baseline": waves_ok, "every_wave_held": held_ok,
                "passed": ok and waves_ok and held_ok and rss_ok}  # fmt: skip

    def wave_slopes(self) -> dict[str, dict[str, Any]]:
        """Per process: RSS slope across the after-wave samples (from the second wave on),
        and the slopes of its every-10-s samples during the waves phase."""
        after: dict[tuple[str, int], list[dict[str, Any]]] = {}
        during: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for s in self.samples:
            key = (s["title"], s["pid"])
            if s["phase"] == "wave-after":
                after.setdefault(key, []).append(s)
            elif s["phase"] == "waves":
                during.setdefault(key, []).append(s)
        out = {}
        for (title, pid), rows in after.items():
            judged = rows[1:]
            rows_10s = during.get((title, pid), [])
            out[f"{title} ({pid})"] = {
                "rss_kib_after_each_wave": [r["rss_kib"] for r in rows],
                "fds_after_each_wave": [r["fds"] for r in rows],
                "rss_kib_per_wave": round(
                    slope([(i, r["rss_kib"]) for i, r in enumerate(judged)]), 1
                ),
                "samples_10s": len(rows_10s),
                "fds_per_min_10s": round(slope([(r["t"], r["fds"]) for r in rows_10s]) * 60, 2),
                "rss_kib_per_min_10s": round(
                    slope([(r["t"], r["rss_kib"]) for r in rows_10s]) * 60, 1
                ),
            }
        return out

    def stop(self) -> int | None:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return None
        finally:
            self.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--reload-every", type=float, default=5.0)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--slice", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds not judged")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each wave is held")
    parser.add_argument("--hold-requests", type=int, default=4, help="per connection, held")
    parser.add_argument(
        "--rss-per-wave", type=float, default=256.0, help="KiB per wave after the first, at most"
    )
    parser.add_argument("--fd-slope", type=float, default=0.5, help="fds per minute, at most")
    parser.add_argument("--rss-slope", type=float, default=200.0, help="KiB per minute, at most")
    parser.add_argument("--json", help="write the samples and the verdict here")
    parser.add_argument("extra", nargs="*", help="more swserve options (after --)")
    args = parser.parse_args(argv)
    result = Soak(args).run()
    verdict = result["verdict"]
    print(f"{result['requests']} requests, {result['errors']} errors, {result['reloads']} reloads, "
          f"{result['recycles']} recycle lines, exit {result['exit_code']}")  # fmt: skip
    for name, s in verdict["series"].items():
        print(f"  {name}: fds {s['fds']} slope {s['fds_per_min']}/min, rss {s['rss_kib']} KiB "
              f"slope {s['rss_kib_per_min']} KiB/min -> {'flat' if s['flat'] else 'GROWS'}")  # fmt: skip
    for name, s in verdict["wave_series"].items():
        print(f"  waves, {name}: fds after each {s['fds_after_each_wave']}, rss after each "
              f"{s['rss_kib_after_each_wave']} KiB, slope {s['rss_kib_per_wave']} KiB/wave; "
              f"every 10 s: fds {s['fds_per_min_10s']}/min, rss {s['rss_kib_per_min_10s']} "
              f"KiB/min ({s['samples_10s']} samples)")  # fmt: skip
    print(
        f"waves back to baseline: {verdict['waves_back_to_baseline']}; "
        f"every wave held: {verdict['every_wave_held']}; passed: {verdict['passed']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
