"""The servers under test: the one table of how to launch each."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Final

from loadtests.run.common import HOST

# ---------------------------------------------------------------------------------------------
# Servers: the one table of how to launch each server under test.
# ---------------------------------------------------------------------------------------------

WSGI: Final = frozenset({"wsgi"})
ASGI: Final = frozenset({"asgi"})
BOTH: Final = WSGI | ASGI


@dataclass(frozen=True)
class Server:
    """How to launch one server.

    ``command`` is a template over {app}, {interface}, {host}, {port}, {workers} and {extra};
    its first word is an executable in the anchors venv. {extra} is ``asgi_extra`` for ASGI apps,
    followed by the scenario's own options for this server (``Scenario.server_args``, the
    ``max_requests`` options of a churn run). Servers with a ``port_line`` are given port 0 and
    the port is read from their log, which avoids the free-port race; the others get a port the
    harness picked.

    The ``reload`` scenario uses the servers with ``reloads_on_hup``; the log regexes, matched
    over the server's whole log, count what they did.
    """

    name: str
    interfaces: frozenset[str]
    command: str
    asgi_extra: str = ""
    port_line: str = ""  # regex for the log line giving the port it bound; "" = can't report
    skip_if_rejected: bool = False  # a CLI usage error means "not supported yet": skip the point
    subject: bool = False  # the server being benchmarked; ratios are computed against the others
    reloads_on_hup: bool = False  # SIGHUP to the process we launched replaces the workers
    max_requests: str = ""  # options recycling a worker after {n} (+ up to {jitter}) requests
    hup_ack_line: str = ""  # regex of the log line that shows a SIGHUP was acted on
    worker_start_line: str = ""  # regex of the log line of every worker (re)start
    # regex of a line with the server's own running totals of worker replacements: the numbers
    # in group 1 of its last match are summed
    replacements_line: str = ""
    # idle-connections: regex over /proc/<pid>/cmdline of the processes that hold the client
    # connections ("master + reactors"); "" = the whole process tree
    front_processes: str = ""

    def argv(
        self, app: str, interface: str, port: int, workers: int, extra_args: str = ""
    ) -> list[str]:
        extra = " ".join(filter(None, (self.asgi_extra if interface == "asgi" else "", extra_args)))
        return shlex.split(
            self.command.format(
                app=app, interface=interface, host=HOST, port=port, workers=workers, extra=extra
            )
        )


# {extra} comes last in every command, so that a scenario's options override the defaults
# (gunicorn's and granian's CLIs take the last value of a repeated option).
SWSERVE: Final = "swserve {app} --bind {host}:{port} --workers {workers}"
SWSERVE_PORT: Final = r"Listening on http://127\.0\.0\.1:(\d+)"
SWSERVE_RELOAD: Final[dict[str, Any]] = {
    "reloads_on_hup": True,
    # --max-requests-jitter defaults to half of --max-requests: the 0..100 the others get.
    "max_requests": "--max-requests {n}",
    "hup_ack_line": r"SIGHUP: reloading the workers",
    # "reload finished; ..." and, at a clean shutdown, "stopped; ...", end in "recycled: none,
    # worker exits: K" or "recycled: max-requests N, reload M, worker exits: K" (the exits also
    # count the workers stopped at shutdown, so they are not used)
    "replacements_line": r"recycled: (.*?), worker exits",
}
# Info level only adds start-up and worker (re)start lines (access logs stay off) and gives
# the bound port.
GUNICORN: Final = (
    "gunicorn {app} --bind {host}:{port} --workers {workers} --log-level info --no-control-socket"
)
GUNICORN_PORT: Final = r"Listening at: http://127\.0\.0\.1:(\d+)"
GUNICORN_RELOAD: Final[dict[str, Any]] = {
    "reloads_on_hup": True,
    "max_requests": "--max-requests {n} --max-requests-jitter {jitter}",
    "hup_ack_line": r"Handling signal: hup",
    "worker_start_line": r"Booting worker with pid",
}
SERVERS: Final[tuple[Server, ...]] = (
    Server(
        "swserve",
        BOTH,
        SWSERVE + " {extra}",
        port_line=SWSERVE_PORT,
        subject=True,
        **SWSERVE_RELOAD,
        # process mode: the master runs the reactor and owns every connection
        front_processes=r"^swserve: (master|reactor)",
    ),
    Server(
        "swserve-base",
        BOTH,
        SWSERVE + " --mode base {extra}",
        port_line=SWSERVE_PORT,
        skip_if_rejected=True,
        subject=True,
        **SWSERVE_RELOAD,
        # base mode: every worker is a reactor and owns its connections (the app is in it too)
        front_processes=r"^swserve: (master|reactor|worker)",
    ),
    # uvicorn's WSGI adapter is deprecated and not how anyone deploys WSGI: ASGI only. With
    # --workers > 1 its multiprocess supervisor restarts the workers on SIGHUP, one by one.
    Server(
        "uvicorn",
        ASGI,
        "uvicorn {app} --host {host} --port {port} --workers {workers} --interface asgi3"
        " --http httptools --loop uvloop --no-access-log --log-level info {extra}",
        port_line=r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
        reloads_on_hup=True,
        max_requests="--limit-max-requests {n} --limit-max-requests-jitter {jitter}",
        hup_ack_line=r"Received SIGHUP, restarting processes",
        worker_start_line=r"Started server process",
    ),
    Server(
        "gunicorn-sync",
        WSGI,
        GUNICORN + " --worker-class sync {extra}",
        port_line=GUNICORN_PORT,
        **GUNICORN_RELOAD,
    ),
    Server(
        "gunicorn-gthread",
        WSGI,
        GUNICORN + " --worker-class gthread --threads 4 {extra}",
        port_line=GUNICORN_PORT,
        **GUNICORN_RELOAD,
    ),
    Server(
        "granian",
        BOTH,
        "granian --interface {interface} --host {host} --port {port} --workers {workers}"
        " --http 1 --no-access-log --log-level warning {extra} {app}",
        asgi_extra="--no-ws --loop uvloop",
        # port_line: none; given port 0, granian logs "Listening at: http://127.0.0.1:0".
        # SIGHUP respawns the workers; granian has no request-count limit (only
        # --workers-lifetime, at least 60 s, and --workers-max-rss), so churn is HUP only.
        reloads_on_hup=True,
        hup_ack_line=r"HUP signal received",
        worker_start_line=r"Spawning worker-\d+ with PID",
    ),
)
SERVERS_BY_NAME: Final = {server.name: server for server in SERVERS}
