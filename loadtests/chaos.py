"""Chaos under load: kill -9 a worker, a reactor or the manager while keep-alive clients run.

Clients (threads, one keep-alive connection each, like wrk's) send a seeded mix of
quick, slow, upload (spooled past ``--body-spool-size``) and streamed requests to
``loadtests/apps/chaos_app.py`` and count every request's outcome.  A seeded
controller kills a process at a chosen moment (idle, during a reload, during a
recycle hand-over, while a spooled upload or a streamed response is held), once
per round.  The app registers each request it holds as a file named by its pid
(``CHAOS_DIR``): after a SIGKILL, the victim's files are exactly what it held.

Pass, per round:

- every failed request was held by the killed process (``unexplained`` = 0);
- a fresh connection is answered within 1 s of the kill (``recovery_s``);
- no request hangs (each has a 10 s deadline);
- at the end, nothing is left in the server's session after it stops.

The manager is killed separately (``--target manager``): swserve then finishes the
requests in flight and exits 1, for the process supervisor to restart it
(``docs/lifecycle.md``); the run checks that no request in flight failed, the exit
code and that no process is left.  ``--target reactor`` (``--reactors 2``) kills
reactor 1 once per round: the master respawns it, and only the requests on the
client connections it held may fail (read from ``/proc`` just before the kill:
``conns_held``); ``recovery_s`` is the time until the new reactor exists and a
fresh connection is answered.  The anchors have no reactor process: beside a
reactor kill, compare their worker kills (their workers own the connections).

    python3 -m loadtests.chaos                               # swserve, worker kills, 8 rounds
    python3 -m loadtests.chaos --servers swserve,gunicorn,uvicorn,granian --rounds 12
    python3 -m loadtests.chaos --target manager --rounds 3
    python3 -m loadtests.chaos --target reactor --rounds 8
    python3 -m loadtests.chaos --target reactor --servers swserve,gunicorn,uvicorn,granian
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests.run import read_stats

REPO = Path(__file__).resolve().parent.parent
APP = "loadtests.apps.chaos_app:app"
MOMENTS = ("idle", "reload", "recycle", "upload", "stream")
REQUEST_TIMEOUT = 10.0
UPLOAD = b"u" * (256 * 1024)  # spooled: swserve runs with --body-spool-size 64KiB


# -- the servers ----------------------------------------------------------------------------


def command(server: str, port: int, workers: int, extra: tuple[str, ...]) -> list[str]:
    py = sys.executable
    if server == "swserve":
        return [py, "-m", "swserve", APP, "--bind", f"127.0.0.1:{port}", "--workers",
                str(workers), "--body-spool-size", "64KiB", "--max-requests", "300",
                "--graceful-timeout", "5", *extra]  # fmt: skip
    if server == "gunicorn":
        return [py, "-m", "gunicorn", APP, "-b", f"127.0.0.1:{port}", "-w", str(workers),
                "--max-requests", "300", "--graceful-timeout", "5"]  # fmt: skip
    if server == "uvicorn":
        return [py, "-m", "uvicorn", APP, "--interface", "wsgi", "--port", str(port),
                "--workers", str(workers)]  # fmt: skip
    if server == "granian":
        return [py, "-m", "granian", "--interface", "wsgi", "--port", str(port),
                "--workers", str(workers), "--respawn-failed-workers", APP]  # fmt: skip
    raise SystemExit(f"unknown server {server!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, path: str = "/", timeout: float = 2.0) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def session_pids(sid: int) -> dict[int, str]:
    """pid → command line of the live processes of the group ``sid`` leads (its own session)."""
    out = {}
    for pid, stat in read_stats().items():
        if stat.pgrp == sid and not stat.zombie:
            with contextlib.suppress(OSError):
                out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return {pid: cmd.strip() for pid, cmd in out.items()}


def by_title(sid: int, prefix: str) -> list[int]:
    return sorted(pid for pid, cmd in session_pids(sid).items() if cmd.startswith(prefix))


class Running:
    """One server in its own session, its log in a file."""

    def __init__(self, server: str, workers: int, extra: tuple[str, ...], chaos_dir: str) -> None:
        self.server = server
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"chaos-{server}-", suffix=".log")  # noqa: SIM115
        env = {**os.environ, "CHAOS_DIR": chaos_dir, "PYTHONPATH": str(REPO),
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        self.proc = subprocess.Popen(
            command(server, self.port, workers, extra),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while get(self.port) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{server} did not start:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def workers(self) -> list[int]:
        """The worker processes: swserve's by title; the anchors' are the root's children."""
        sid = self.proc.pid
        if self.server == "swserve":
            return by_title(sid, "swserve: worker")
        stats = read_stats()
        kids = [
            pid
            for pid, cmd in session_pids(sid).items()
            if pid in stats and stats[pid].ppid == sid and "resource_tracker" not in cmd
        ]
        return sorted(kids)

    def stop(self, timeout: float = 30.0) -> tuple[int | None, list[str]]:
        """SIGTERM, wait; → the exit code and whatever is left in its session (then killed)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        deadline = time.monotonic() + 5
        while session_pids(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = list(session_pids(self.proc.pid).values())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.log.close()
        return code, left


# -- the load -------------------------------------------------------------------------------


@dataclass
class Outcome:
    rid: str
    route: str
    ok: bool
    at: float  # monotonic time of the outcome
    error: str = ""
    sent: float = 0.0  # when the request was sent
    reused: bool = False  # on a connection that had served a request before
    conn_pid: int = 0  # the worker that answered the previous request on this connection
    lport: int = 0  # the client-side port of its connection


class Client(threading.Thread):
    """One keep-alive connection; a seeded mix of requests; every outcome recorded."""

    def __init__(self, index: int, port: int, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.index, self.port, self.stop_event = index, port, stop
        self.rng = random.Random(seed * 1000 + index)
        self.outcomes: list[Outcome] = []
        self.conn: http.client.HTTPConnection | None = None
        self.conn_pid = 0

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            rid = f"{self.index}.{n}"
            route = self.rng.choices(["root", "slow", "upload", "stream"], [70, 15, 8, 7])[0]
            sent, reused, conn_pid = time.monotonic(), self.conn is not None, self.conn_pid
            lport = self._lport()
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT
                    )
                path = "/" if route == "root" else f"/{route}"
                body = UPLOAD if route == "upload" else None
                self.conn.request(
                    "POST" if body else "GET", path, body=body, headers={"X-Req-Id": rid}
                )
                lport = lport or self._lport()
                response = self.conn.getresponse()
                data = response.read()
                ok = response.status == 200 and (route != "upload" or data == b"%d" % len(UPLOAD))
                error = "" if ok else f"status {response.status}"
                self.outcomes.append(
                    Outcome(rid, route, ok, time.monotonic(), error, sent, reused, conn_pid, lport)
                )
                self.conn_pid = int(response.getheader("X-Worker-Pid") or 0)
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                    self.conn_pid = 0
            except (OSError, http.client.HTTPException) as exc:
                kind = "hang" if isinstance(exc, TimeoutError) else type(exc).__name__
                lport = lport or self._lport()
                self.outcomes.append(
                    Outcome(
                        rid, route, False, time.monotonic(), kind, sent, reused, conn_pid, lport
                    )
                )
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                self.conn_pid = 0
                if self.stop_event.wait(0.01):  # a refused connect must not spin
                    break
        if self.conn is not None:
            self.conn.close()

    def _lport(self) -> int:
        sock = self.conn.sock if self.conn is not None else None
        if sock is None:
            return 0
        try:
            port: int = sock.getsockname()[1]
        except OSError:
            return 0
        return port


# -- the controller -------------------------------------------------------------------------


@dataclass
class Kill:
    server: str
    target: str
    moment: str
    victim: int
    at: float
    held: list[str] = field(default_factory=list)  # request ids the victim held
    failed: list[str] = field(default_factory=list)  # request ids that failed around it
    # a keep-alive connection the victim held (base mode, the anchors), reused after the kill
    idle_connections_lost: list[str] = field(default_factory=list)
    refused_after_stop: list[str] = field(default_factory=list)  # manager/reactor kills
    on_its_connections: list[str] = field(default_factory=list)  # pinned connections
    held_before_the_app: list[str] = field(default_factory=list)  # 502s, cut responses
    log_tail: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    recovery_s: float | None = None
    note: str = ""
    conns_held: list[int] = field(default_factory=list)  # a reactor's client connections


def held_by(chaos_dir: str, pid: int) -> list[str]:
    return sorted(
        name.split("-", 2)[1] for name in os.listdir(chaos_dir) if name.startswith(f"{pid}-")
    )


def holder(chaos_dir: str, route: str, workers: list[int], wait: float = 2.0) -> int | None:
    """A worker that holds a request of ``route`` now (waits up to ``wait`` s)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for name in os.listdir(chaos_dir):
            pid, _, rest = name.partition("-")
            if rest.endswith(f"-{route}") and int(pid) in workers:
                return int(pid)
        time.sleep(0.002)
    return None


def recovery(port: int, limit: float = 5.0) -> float | None:
    """Seconds until a fresh connection is answered 200."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if get(port, timeout=1.0) == 200:
            return time.monotonic() - start
        time.sleep(0.005)
    return None


def client_ports(pid: int, port: int) -> list[int]:
    """Client-side ports of the connections to ``port`` that process ``pid`` holds."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[9]) in inodes and int(fields[1].rsplit(":", 1)[1], 16) == port:
            ports.append(int(fields[2].rsplit(":", 1)[1], 16))
    return sorted(ports)


def reactor_round(run: Running, rng: random.Random) -> Kill:
    """Kill reactor 1 (``--reactors 2``); the master respawns it."""
    sid = run.proc.pid
    time.sleep(rng.uniform(0.0, 0.5))
    pids = by_title(sid, "swserve: reactor")
    if not pids:
        return Kill(run.server, "reactor", "load", 0, time.monotonic(), note="no reactor")
    victim = pids[0]
    held = client_ports(victim, run.port)
    at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    kill = Kill(run.server, "reactor", "load", victim, at, conns_held=held)
    deadline = at + 5.0
    while time.monotonic() < deadline:  # its replacement exists, and a new connection is served
        if [p for p in by_title(sid, "swserve: reactor") if p != victim] and get(run.port) == 200:
            kill.recovery_s = time.monotonic() - at
            break
        time.sleep(0.002)
    return kill


def worker_round(run: Running, rng: random.Random, chaos_dir: str, moment: str) -> Kill:
    workers = run.workers()
    victim: int | None = None
    if moment == "reload" and run.server in ("swserve", "gunicorn", "granian"):
        os.kill(run.proc.pid, signal.SIGHUP)
        time.sleep(rng.uniform(0.0, 0.4))
        workers = run.workers()
    elif moment == "recycle":
        time.sleep(rng.uniform(0.0, 0.5))  # --max-requests 300: hand-overs all the time
        workers = run.workers()
    elif moment in ("upload", "stream"):
        victim = holder(chaos_dir, moment, workers)
    if victim is None:
        if not workers:
            return Kill(run.server, "worker", moment, 0, time.monotonic(), note="no worker")
        victim = rng.choice(workers)
    at = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(victim, signal.SIGKILL)
    kill = Kill(run.server, "worker", moment, victim, at)
    kill.recovery_s = recovery(run.port)
    return kill


def account(
    kills: list[Kill], clients: list[Client], chaos_dir: str, pinned: bool
) -> list[Outcome]:
    """Give each failure to the kill just before it; → failures no kill explains.

    ``pinned``: a connection stays with one worker process (swserve's base mode, the
    anchors), so the requests on the victim's connections were its to lose too.
    """
    failures = sorted((o for c in clients for o in c.outcomes if not o.ok), key=lambda o: o.at)
    for kill in kills:
        kill.held = held_by(chaos_dir, kill.victim) if kill.victim else []
    orphans = []
    for failure in failures:
        before = [k for k in kills if k.at <= failure.at + 0.01]
        if not before:
            orphans.append(failure)
            continue
        kill = before[-1]
        kill.failed.append(failure.rid)
        what = f"{failure.rid} {failure.route} {failure.error}"
        if failure.rid in kill.held:
            continue
        if kill.target == "reactor" and failure.lport in kill.conns_held:
            kill.on_its_connections.append(what)  # a connection the dead reactor held
            continue
        if pinned and kill.target == "worker" and failure.conn_pid == kill.victim:
            kill.on_its_connections.append(what)
            continue
        if failure.error in ("status 502", "IncompleteRead") and kill.target == "worker":
            # a 502 is the server's word that the dead worker held it (it had reached the
            # worker, not yet the app: no file); a cut response was being produced when
            # the kill came (after close(), before its last frame). Bounded below by the
            # worker's capacity.
            kill.held_before_the_app.append(what)
            continue
        if kill.target != "worker" and failure.sent >= kill.at:
            kill.refused_after_stop.append(what)  # sent after the kill, to a stopping server
        elif kill.target == "worker" and failure.sent >= kill.at and failure.reused:
            kill.idle_connections_lost.append(what)
        else:
            kill.unexplained.append(what)
    for kill in kills:  # a worker holds at most its capacity (--threads 1, --dispatch idle)
        extra = len(kill.held_before_the_app) + len(kill.held) - 1
        if kill.target == "worker" and extra > 0 and not pinned:
            kill.unexplained += kill.held_before_the_app[-extra:]
    return orphans


def run_server(server: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    chaos_dir = tempfile.mkdtemp(prefix="chaos-held-")
    # the anchors have no reactor process: beside swserve's reactor kills, their worker
    # kills (their workers own the connections, as a reactor does)
    target = "worker" if args.target == "reactor" and server != "swserve" else args.target
    extra: tuple[str, ...] = ("--reactors", "2") if target == "reactor" else ()
    if args.mode == "base":
        extra += ("--mode", "base")
    run = Running(server, args.workers, extra, chaos_dir)
    stop = threading.Event()
    clients = [Client(i, run.port, args.seed, stop) for i in range(args.clients)]
    for client in clients:
        client.start()
    kills: list[Kill] = []
    label = f"{server} (base)" if server == "swserve" and args.mode == "base" else server
    result: dict[str, Any] = {"server": label, "target": target, "seed": args.seed}
    try:
        time.sleep(1.0)  # load ramps up
        for round_no in range(args.rounds):
            if target == "worker":
                moment = (
                    MOMENTS[round_no % len(MOMENTS)] if args.all_moments else rng.choice(MOMENTS)
                )
                kills.append(worker_round(run, rng, chaos_dir, moment))
            elif target == "reactor":
                kills.append(reactor_round(run, rng))
            else:
                kills.append(process_round(run, rng, target))
                break  # the server is gone: one kill per server run
            time.sleep(args.gap)
    finally:
        stop.set()
        for client in clients:
            client.join(REQUEST_TIMEOUT + 5)
    hung = [c.index for c in clients if c.is_alive()]
    code, left = run.stop()
    pinned = not (server == "swserve" and args.mode == "process")
    orphans = account(kills, clients, chaos_dir, pinned)
    outcomes = [o for c in clients for o in c.outcomes]
    result.update(
        requests=len(outcomes),
        failed=sum(1 for o in outcomes if not o.ok),
        hangs=sum(1 for o in outcomes if o.error == "hang") + len(hung),
        kills=[asdict(k) for k in kills],
        failures_without_a_kill=[f"{o.rid} {o.route} {o.error}" for o in orphans],
        exit_code=code,
        left_behind=left,
    )
    result["passed"] = verdict(result, target)
    shutil.rmtree(chaos_dir, ignore_errors=True)
    return result


def process_round(run: Running, rng: random.Random, target: str) -> Kill:
    """Kill the manager; the server is expected to stop (exit 1)."""
    sid = run.proc.pid
    pids = by_title(sid, "swserve: manager")
    time.sleep(rng.uniform(0.0, 1.0))
    victim = rng.choice(pids)
    at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    kill = Kill(run.server, target, "load", victim, at)
    try:
        code = run.proc.wait(30)
        kill.note = f"the server exited {code} {time.monotonic() - at:.2f}s after the kill"
        kill.log_tail = run.text().splitlines()[-6:]
    except subprocess.TimeoutExpired:
        kill.note = "the server did not exit within 30 s"
    # requests in flight when the manager died finish: the held files of every worker
    # are gone; a request a client sent after the listeners closed is refused (not counted)
    return kill


def verdict(result: dict[str, Any], target: str) -> bool:
    if result["hangs"] or result["left_behind"] or result["failures_without_a_kill"]:
        return False
    kills = result["kills"]
    if target == "worker":
        return all(
            not k["unexplained"] and k["recovery_s"] is not None and k["recovery_s"] <= 1.0
            for k in kills
        )
    if target == "manager":
        return all("exited 1" in k["note"] and not k["unexplained"] for k in kills)
    # a reactor: only its connections fail, each at most once, and it is back within 1 s
    return all(
        not k["unexplained"]
        and len(k["on_its_connections"]) <= len(k["conns_held"])
        and k["recovery_s"] is not None
        and k["recovery_s"] <= 1.0
        for k in kills
    )


def summary(results: list[dict[str, Any]]) -> str:
    lines = ["| server | target | kills | requests | failed | failed per kill | held by victims "
             "| conns held | on its conns | idle conns lost | refused after stop | unexplained "
             "| max recovery | hangs | left | pass |", "|" + "---|" * 16]  # fmt: skip
    for r in results:
        kills = r["kills"]
        held = sum(len(k["held"]) for k in kills)
        unexplained = sum(len(k["unexplained"]) for k in kills)
        idle = sum(len(k["idle_connections_lost"]) for k in kills)
        conns = sum(len(k["on_its_connections"]) for k in kills)
        refused = sum(len(k["refused_after_stop"]) for k in kills)
        rec = [k["recovery_s"] for k in kills if k["recovery_s"] is not None]
        conns_held = sum(len(k["conns_held"]) for k in kills)
        lines.append(
            f"| {r['server']} | {r['target']} | {len(kills)} | {r['requests']} | {r['failed']} "
            f"| {r['failed'] / max(1, len(kills)):.2f} | {held} | {conns_held} | {conns} | {idle} "
            f"| {refused} "
            f"| {unexplained} "
            f"| {max(rec) if rec else float('nan'):.3f}s | {r['hangs']} "
            f"| {len(r['left_behind'])} | {'yes' if r['passed'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="swserve")
    parser.add_argument("--target", choices=("worker", "manager", "reactor"), default="worker")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--all-moments", action="store_true", help="each moment in turn")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--mode", choices=("process", "base"), default="process")
    args = parser.parse_args(argv)
    results = [run_server(s, args) for s in args.servers.split(",")]
    if args.target == "manager":
        # for process kills, a request refused after the server closed its listeners is
        # not a request in flight: list the kills' notes for the report
        for r in results:
            for k in r["kills"]:
                print(f"{r['server']}: killed {k['target']} pid {k['victim']}: {k['note']}")
    print(summary(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
