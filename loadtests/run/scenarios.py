"""The scenarios and suites: the one table of what is measured."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from loadtests.run.common import HERE
from loadtests.run.servers import Server

# ---------------------------------------------------------------------------------------------
# Scenarios: the one table of what is measured.
# ---------------------------------------------------------------------------------------------

POST_1MIB_LUA: Final = """\
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""

# One request in ten goes to /slow (50 ms), the rest to /fast (1 ms).
MIXED_LUA: Final = """\
local counter = 0
request = function()
  counter = counter + 1
  if counter % 10 == 0 then
    return wrk.format("GET", "/slow")
  end
  return wrk.format("GET", "/fast")
end
"""


WRK: Final = "wrk"  # one wrk run per point
RELOAD: Final = "reload"  # wrk while the workers are recycled and reloaded (SIGHUP), vs. without
OPENLOOP: Final = "openloop"  # openloop.py: Poisson arrivals at fixed rates, latency per kind
SLOWLORIS: Final = "slowloris"  # wrk with and without slowloris.py's connections held open
IDLE: Final = "idle"  # wrk and RSS with and without idle.py's keep-alive connections held open
STARTUP: Final = "startup"  # launch until the first 200, one launch per point
IDLE_CONNECTIONS: Final = 10_000  # idle-connections: the keep-alive connections held open
IDLE_ROOM: Final = IDLE_CONNECTIONS + 1000  # the connection limit given to servers that have one


@dataclass(frozen=True)
class Scenario:
    """What one scenario measures and how.

    ``duration_s``, ``repeat``, ``connections`` and ``workers``, when set, replace the suite's
    defaults for this scenario; the command-line options replace both. ``default_servers``, when
    set, are the servers it runs unless ``--servers`` is given.
    """

    name: str
    interface: str
    app: str
    suites: frozenset[str]
    summary: str
    path: str = "/"
    probe_path: str = "/"  # GET target for the readiness check
    lua: str = ""  # wrk script, written to a temp file when set
    kind: str = WRK
    asgi_app: str = ""  # the same test for servers that serve ASGI only (uvicorn)
    server_args: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    duration_s: int | None = None
    repeat: int | None = None
    connections: int | None = None
    workers: int | None = None
    default_servers: tuple[str, ...] = ()

    def app_for(self, server: Server) -> tuple[str, str] | None:
        """The (app, interface) ``server`` runs in this scenario, or None if it can't."""
        if self.kind == RELOAD and not server.reloads_on_hup:
            return None
        if self.interface in server.interfaces:
            return self.app, self.interface
        if self.asgi_app and "asgi" in server.interfaces:
            return self.asgi_app, "asgi"
        return None


QUICK: Final = frozenset({"quick", "full"})  # quick scenarios are part of full too
FULL: Final = frozenset({"full"})
APPS: Final = "loadtests.apps."
SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario(
        "wsgi-hello", "wsgi", APPS + "hello_wsgi:app", QUICK, "13-byte body: fixed cost, WSGI"
    ),
    Scenario(
        "asgi-hello", "asgi", APPS + "hello_asgi:app", QUICK, "13-byte body: fixed cost, ASGI"
    ),
    Scenario(
        "flask-json", "wsgi", APPS + "flask_json:app", FULL, "Flask jsonify: a real framework"
    ),
    Scenario(
        "fastapi-json", "asgi", APPS + "fastapi_json:app", FULL, "FastAPI JSON: a real framework"
    ),
    Scenario("wsgi-64k", "wsgi", APPS + "big:app", FULL, "64 KiB response body, WSGI"),
    Scenario("asgi-64k", "asgi", APPS + "big:asgi_app", FULL, "64 KiB response body, ASGI"),
    Scenario(
        "wsgi-echo-1m",
        "wsgi",
        APPS + "big:app",
        FULL,
        "1 MiB POST echoed back, WSGI",
        path="/echo",
        lua=POST_1MIB_LUA,
    ),
    Scenario(
        "asgi-echo-1m",
        "asgi",
        APPS + "big:asgi_app",
        FULL,
        "1 MiB POST echoed back, ASGI",
        path="/echo",
        lua=POST_1MIB_LUA,
    ),
    Scenario(
        "wsgi-mixed",
        "wsgi",
        APPS + "mixed:app",
        frozenset(),
        "90% 1 ms, 10% 50 ms handlers: head-of-line blocking",
        probe_path="/fast",
        lua=MIXED_LUA,
    ),
    Scenario(
        "reload",
        "wsgi",
        APPS + "hello_wsgi:app",
        frozenset({"reload"}),
        "wsgi-hello, 2 workers: baseline vs SIGHUP every 2 s + max-requests 200",
        kind=RELOAD,
        asgi_app=APPS + "hello_asgi:app",
        # granian logs its worker respawns and the HUP only at info level (last option wins)
        server_args={"granian": "--log-level info"},
        duration_s=20,
        repeat=1,
        workers=2,
    ),
    Scenario(
        "mixed",
        "wsgi",
        APPS + "mixed:app",
        FULL,
        "open loop, Poisson 170 and 270 req/s, 10% 50 ms: fast p99 vs an ideal dispatcher",
        probe_path="/fast",
        kind=OPENLOOP,
        # The same execution slots everywhere: 2 workers x 1 thread.
        server_args={
            "swserve": "--threads 1",
            "swserve-base": "--threads 1",
            "gunicorn-gthread": "--threads 1",  # after --threads 4: the last one wins
            "granian": "--blocking-threads 1",
        },
        duration_s=20,
        repeat=1,
        connections=32,
        workers=2,
    ),
    Scenario(
        "slowloris",
        "wsgi",
        APPS + "hello_wsgi:app",
        frozenset(),
        "hello, wrk c=32: clean vs 500 slowloris connections held open",
        kind=SLOWLORIS,
        asgi_app=APPS + "hello_asgi:app",
        duration_s=10,
        repeat=1,
        connections=32,
        default_servers=("swserve", "gunicorn-sync", "gunicorn-gthread", "uvicorn"),
    ),
    Scenario(
        "idle-connections",
        "wsgi",
        APPS + "hello_wsgi:app",
        FULL,
        f"hello, wrk c=64: RSS and req/s with and without {IDLE_CONNECTIONS:,} idle connections",
        kind=IDLE,
        asgi_app=APPS + "hello_asgi:app",
        # Room for the idle connections: they must outlive the run (every default keep-alive
        # timeout is a few seconds), and wrk's 64 must still get in beside them (swserve's
        # --max-connections defaults to exactly 10,000; gthread's --worker-connections to 1,000).
        server_args={
            "swserve": f"--keep-alive 300 --max-connections {IDLE_ROOM}",
            "swserve-base": f"--keep-alive 300 --max-connections {IDLE_ROOM}",
            "uvicorn": "--timeout-keep-alive 300",
            "gunicorn-gthread": f"--keep-alive 300 --worker-connections {IDLE_ROOM}",
            # granian has no keep-alive timeout option; its header-read timeout (30 s default,
            # 60 s at most) closes idle keep-alive connections. --backpressure (default: backlog
            # / workers = 1024) caps the connections a worker serves, idle ones included.
            "granian": f"--http1-header-read-timeout 60000 --backpressure {IDLE_ROOM}",
        },
        duration_s=10,
        repeat=2,
        # gunicorn's sync worker has no keep-alive: it closes every connection after answering
        default_servers=("swserve", "swserve-base", "uvicorn", "gunicorn-gthread", "granian"),
    ),
    Scenario(
        "startup",
        "wsgi",
        APPS + "hello_wsgi:app",
        FULL,
        "process start to the first 200 on the hello app, median of the launches",
        kind=STARTUP,
        asgi_app=APPS + "hello_asgi:app",
        repeat=5,
    ),
)
SCENARIOS_BY_NAME: Final = {scenario.name: scenario for scenario in SCENARIOS}


@dataclass(frozen=True)
class Suite:
    duration_s: int
    repeat: int
    connections: int = 64


SUITES: Final = {
    "quick": Suite(duration_s=5, repeat=2),
    "full": Suite(duration_s=8, repeat=3),
    "reload": Suite(duration_s=20, repeat=1),
}
# reload: a churn point sends SIGHUP this often, and the servers recycle after this many requests
HUP_INTERVAL_S: Final = 2.0
MAX_REQUESTS: Final = 200
BASELINE: Final = "baseline"
RECYCLE: Final = "recycle"  # max-requests only: issue #3's "the same run without reloads"
CHURN: Final = "churn"
# mixed: the open-loop rates, and the seed of the arrival times and the fast/slow sequence
OPENLOOP_RATES: Final = (170.0, 270.0)
OPENLOOP_SEED: Final = 1
OPENLOOP_WARMUP_RATE: Final = 100.0
OPENLOOP_TIMEOUT_S: Final = 10.0  # per request
OPENLOOP_SCRIPT: Final = HERE / "openloop.py"
# slowloris: the connections slowloris.py holds open during the second point of each pair
CLEAN: Final = "clean"
HELD: Final = "slowloris"
SLOWLORIS_CONNECTIONS: Final = 500
SLOWLORIS_SCRIPT: Final = HERE / "slowloris.py"
SLOWLORIS_RAMP_TIMEOUT_S: Final = 15.0  # until every connection is open, at most
# Between the end of the ramp and the measured run (the warm-up runs in it): the servers accept
# and start timing the connections, so that with the default 10 s a 10 s head timeout such as
# swserve's fires, and the client reconnects, inside the measured run.
SLOWLORIS_SOAK_S: Final = 2.0
SLOWLORIS_MIN_RATIO: Final = 0.95  # the issue: swserve loses < 5 % of its throughput
FD_TROUBLE_RE: Final = re.compile(r"Too many open files|EMFILE|ENFILE", re.I)
# idle-connections: the pair of points, and idle.py
WITHOUT: Final = "without"
WITH: Final = "with"
IDLE_SCRIPT: Final = HERE / "idle.py"
IDLE_RAMP_TIMEOUT_S: Final = 60.0  # until every connection has had its first exchange, at most
IDLE_RSS_BASE_KIB: Final = 40 * 1024  # the issue: master + reactors <= 40 MiB + 8 KiB per conn
IDLE_RSS_PER_CONN_KIB: Final = 8
IDLE_MIN_RATIO: Final = 0.90  # the issue: throughput with them >= 0.9x without
# startup: how often the harness looks for the port line and tries the GET
STARTUP_POLL_S: Final = 0.005
STARTUP_MAX_S: Final = 0.3  # the issue: process start to the first 200
