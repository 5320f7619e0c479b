"""Settings: one table, declared once, read by the CLI, the docs and the tests.

Every setting is a field of the frozen :class:`Config` dataclass, and the
field's metadata carries everything else about it (flag names, help, section,
how to parse a string).  ``SETTINGS`` is derived from the fields, the click
command in ``cli.py`` is generated from ``SETTINGS``, and ``docs/settings.md``
is generated from it too (a unit test fails when that page is stale).

This module does no I/O beyond ``os.cpu_count()`` for a default.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from swserve.errors import ConfigError
from swserve.ipc.control import Interface, Mode
from swserve.net import proxy
from swserve.static.resolve import parse_mount

DEFAULT_APP: Final = "swserve.demo:app"
# seconds a WebSocket client gets to answer the server's close frame before the TCP
# connection is cut (websockets' and uvicorn's close_timeout is 10 s; ours is shorter
# because it also delays a retiring worker's exit)
WS_CLOSE_WAIT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Setting:
    """How one Config field is exposed to users."""

    name: str
    flags: tuple[str, ...]
    help: str
    section: str
    default: Any
    kind: str  # str | int | float | bool | choice | size | list | argument
    choices: tuple[str, ...] = ()
    default_doc: str = ""  # shown instead of the default where it is computed
    metavar: str = ""
    parse: Callable[[str], Any] | None = None

    @property
    def env(self) -> str:
        return "SWSERVE_" + self.name.upper()


def setting(
    default: Any = None,
    *,
    help: str,
    section: str,
    flags: Sequence[str] = (),
    kind: str = "",
    choices: Sequence[str] = (),
    default_factory: Callable[[], Any] | None = None,
    default_doc: str = "",
    metavar: str = "",
) -> Any:
    meta = {
        "help": help,
        "section": section,
        "flags": tuple(flags),
        "kind": kind,
        "choices": tuple(choices),
        "default_doc": default_doc,
        "metavar": metavar,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS: Final = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``"16MiB"``, ``"64k"`` or ``"1048576"`` → bytes (binary units throughout)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise ConfigError(f"{text!r} is not a size (try 1048576, 64KiB or 16MiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_umask(text: str) -> int:
    """``"0o027"``, ``"027"`` or ``"27"`` → 0o027: a umask is always read as octal."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o777:
        raise ConfigError(f"--umask must be an octal mode up to 0o777, e.g. 0o027 (got {text!r})")
    return int(digits, 8)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Config:
    """The effective settings of one server.  Immutable; built by :func:`build_config`."""

    app: str = setting(
        DEFAULT_APP,
        kind="argument",
        section="Application",
        help="The application as module:attribute (or module:factory() with --factory). "
        "Defaults to the built-in demo app.",
    )
    factory: bool = setting(
        False,
        kind="bool",
        section="Application",
        help="Treat APP as a factory: call it with no arguments to get the application.",
    )
    interface: str = setting(
        "auto",
        kind="choice",
        choices=("auto", *(i.value for i in Interface)),
        section="Application",
        help="The application interface. auto tells an ASGI callable (a coroutine function, "
        "or an object whose __call__ is one) from a WSGI one without calling it.",
    )
    app_dir: str = setting(
        ".",
        kind="str",
        section="Application",
        help="Directory put first on sys.path before the app is imported.",
    )
    lifespan: str = setting(
        "auto",
        kind="choice",
        choices=("auto", "on", "off"),
        section="Application",
        help="ASGI lifespan protocol. auto: run it, and carry on if the app does not support "
        "it; on: a failure stops the server; off: never run it.",
    )
    bind: tuple[str, ...] = setting(
        (),
        kind="list",
        flags=("--bind", "-b"),
        section="Listeners",
        metavar="ADDRESS",
        help="Address to listen on: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (an inherited "
        "listening socket). Repeat for several. "
        "Port 0 picks a free port, printed in the 'Listening on' line.",
    )
    host: str = setting(
        "127.0.0.1", kind="str", section="Listeners", help="Host to bind when --bind is not given."
    )
    port: int = setting(
        8000, kind="int", section="Listeners", help="Port to bind when --bind is not given."
    )
    backlog: int = setting(
        2048,
        kind="int",
        section="Listeners",
        help="Listen queue length: connections beyond what is being served wait here "
        "(gunicorn's default).",
    )
    workers: int = setting(
        default_factory=_cpu_count,
        kind="int",
        flags=("--workers", "-w"),
        section="Processes",
        default_doc="the number of usable CPU cores",
        help="Number of worker processes.",
    )
    threads: int = setting(
        1,
        kind="int",
        section="Processes",
        help="Threads per WSGI worker: how many requests one worker runs at once.",
    )
    asgi_concurrency: int = setting(
        1000,
        kind="int",
        section="Processes",
        help="Requests one ASGI worker runs at once; more wait in the reactor's queue.",
    )
    dispatch: str = setting(
        "idle",
        kind="str",
        metavar="MODE",
        section="Processes",
        help="Which worker gets a request. idle: the next idle worker in turn, else the "
        "least loaded one with room, else the request waits in the reactor; round-robin: "
        "the next worker in turn; fd: a connection always meets the same worker; ip: a "
        "client address (after trusted proxy headers) always meets the same worker, waiting "
        "for it when busy; key:HEADER, key:cookie:NAME: the same, keyed by that header or "
        "cookie (requests without it: idle). ip and key are process-mode features.",
    )
    graceful_timeout: float = setting(
        30.0,
        kind="float",
        section="Processes",
        help="Seconds that in-flight requests get to finish on shutdown before workers are killed.",
    )
    max_requests: int = setting(
        0,
        kind="int",
        section="Worker life cycle",
        help="Recycle a worker after this many requests (0: never), to bound slow memory "
        "leaks. Its replacement is started and ready before it stops taking requests.",
    )
    max_requests_jitter: int = setting(
        -1,
        kind="int",
        section="Worker life cycle",
        default_doc="half of --max-requests",
        help="Each worker's own limit is --max-requests plus a random 0..J, so workers "
        "started together do not recycle together (Swoole's rule).",
    )
    max_worker_memory: int = setting(
        0,
        kind="int",
        section="Worker life cycle",
        metavar="MIB",
        help="Recycle a worker whose resident memory passes this many MiB (0: never); "
        "checked by the manager twice a second.",
    )
    max_worker_lifetime: float = setting(
        0.0,
        kind="float",
        section="Worker life cycle",
        help="Recycle a worker older than this many seconds, plus up to 10% jitter (0: never).",
    )
    max_wait_time: float = setting(
        30.0,
        kind="float",
        section="Worker life cycle",
        help="Seconds a retiring worker gets to finish its in-flight requests before it is "
        "killed (Swoole's max_wait_time); its unfinished requests then get 502.",
    )
    max_concurrent_recycles: int = setting(
        1,
        kind="int",
        section="Worker life cycle",
        help="Workers replaced at the same time during recycling and reloads.",
    )
    reload_mode: str = setting(
        "async",
        kind="choice",
        choices=("async", "sync"),
        section="Worker life cycle",
        help="async: a replacement is started and ready before the old worker retires; "
        "sync: one worker at a time, the next only after the previous one exited.",
    )
    task_workers: int = setting(
        0,
        kind="int",
        section="Task workers and user processes",
        help="Task worker processes that run swserve.task() calls from workers, user "
        "processes and other tasks (0: none, and the feature costs nothing).",
    )
    task_queue_size: int = setting(
        1000,
        kind="int",
        section="Task workers and user processes",
        help="Tasks that may wait for a free task worker; one more gets TaskQueueFull at once.",
    )
    task_timeout: float = setting(
        0.0,
        kind="float",
        section="Task workers and user processes",
        help="Seconds a task may run (0: no limit). Past it the caller gets TaskTimeout and "
        "the task worker is killed and replaced.",
    )
    task_max_requests: int = setting(
        0,
        kind="int",
        section="Task workers and user processes",
        help="Recycle a task worker after this many tasks, plus a random 0..half of it "
        "(0: never). Its replacement is ready before it stops taking tasks.",
    )
    process: tuple[str, ...] = setting(
        (),
        kind="list",
        section="Task workers and user processes",
        metavar="MODULE:CALLABLE",
        help="Run this callable in a user process beside the workers, restarted with back-off "
        "when it returns or crashes, replaced on SIGHUP. Repeatable.",
    )
    timeout: float = setting(
        0.0,
        kind="float",
        section="Worker life cycle",
        help="Seconds a request may run in a worker (0: no limit). Past it the client gets "
        "504; a WSGI worker is replaced, an ASGI request is cancelled.",
    )
    http: str = setting(
        "auto",
        kind="choice",
        choices=("auto", "httptools", "h11"),
        section="HTTP",
        help="HTTP/1.1 parser. auto: httptools when installed, else h11. Both are held to the "
        "same strictness.",
    )
    keep_alive: float = setting(
        5.0,
        kind="float",
        section="HTTP",
        help="Seconds an idle keep-alive connection stays open (uvicorn's default). Raise it "
        "above your load balancer's idle timeout.",
    )
    header_timeout: float = setting(
        10.0,
        kind="float",
        section="HTTP",
        help="Seconds a client gets to send a complete request head, from its first byte; "
        "past it: 408 and close (defeats slowloris, which trickles bytes to stay alive).",
    )
    body_timeout: float = setting(
        30.0,
        kind="float",
        section="HTTP",
        help="Longest gap between two reads of a request body; past it: 408 and close.",
    )
    limit_request_line: int = setting(
        8190,
        kind="int",
        section="HTTP",
        help="Longest request target in bytes; longer: 414 (gunicorn's name; its default is "
        "4094 for the whole line, 8190 its maximum).",
    )
    limit_request_fields: int = setting(
        100,
        kind="int",
        section="HTTP",
        help="Most header fields in a request; more: 431 (gunicorn's name and default).",
    )
    limit_request_field_size: int = setting(
        8190,
        kind="int",
        section="HTTP",
        help="Longest header field (name plus value, without the colon and whitespace) in bytes; "
        "longer: 431 (gunicorn's default, which counts the whole line).",
    )
    max_connections: int = setting(
        10000,
        kind="int",
        section="Listeners",
        help="Open client connections above which the reactor stops accepting (they wait "
        "in the listen backlog) until one closes (0: no limit).",
    )
    write_timeout: float = setting(
        60.0,
        kind="float",
        section="HTTP",
        help="Seconds a client may leave our response unread (its buffer full) before the "
        "connection is closed.",
    )
    proxy_headers: bool = setting(
        True,
        kind="bool",
        section="Proxies",
        help="Trust X-Forwarded-For/-Proto/-Host/-Port and RFC 7239 Forwarded from the "
        "peers in --forwarded-allow-ips to set the client address, scheme and host "
        "(uvicorn's default).",
    )
    forwarded_allow_ips: tuple[str, ...] = setting(
        ("127.0.0.1",),
        kind="list",
        section="Proxies",
        metavar="IP|CIDR|*",
        help="Peers whose proxy headers are trusted: IPs, CIDRs, * for all, 'unix' for "
        "unix-socket peers. Repeatable or comma-separated.",
    )
    root_path: str = setting(
        "",
        kind="str",
        section="Proxies",
        metavar="PREFIX",
        help="The prefix the app is mounted under behind a proxy (WSGI SCRIPT_NAME, ASGI root_path).",
    )
    server_header: bool = setting(
        True,
        kind="bool",
        section="HTTP",
        help="Send a Server: swserve header when the app sets none.",
    )
    date_header: bool = setting(
        True,
        kind="bool",
        section="HTTP",
        help="Send a Date header when the app sets none.",
    )
    uds_permissions: str = setting(
        "",
        kind="str",
        section="Listeners",
        metavar="OCTAL",
        help="Mode of unix sockets swserve creates, e.g. 0o660 (default: what the umask leaves).",
    )
    ssl_certfile: str = setting(
        "", kind="str", section="TLS", metavar="PATH", help="PEM certificate chain: serve HTTPS."
    )
    ssl_keyfile: str = setting(
        "", kind="str", section="TLS", metavar="PATH", help="PEM private key of the certificate."
    )
    ssl_keyfile_password: str = setting(
        "", kind="str", section="TLS", help="Password of an encrypted --ssl-keyfile."
    )
    ssl_ca_certs: str = setting(
        "",
        kind="str",
        section="TLS",
        metavar="PATH",
        help="CA certificates to verify client certificates against.",
    )
    ssl_cert_reqs: str = setting(
        "none",
        kind="choice",
        choices=("none", "optional", "required"),
        section="TLS",
        help="Whether a client certificate is asked for (optional) or required.",
    )
    ssl_ciphers: str = setting(
        "",
        kind="str",
        section="TLS",
        help="OpenSSL cipher list for TLS 1.2 (default: Python's secure defaults). TLS 1.2 "
        "is the minimum version.",
    )
    max_queued_requests: int = setting(
        1000,
        kind="int",
        section="Processes",
        help="Complete requests that may wait in the reactor for a free worker; above it a "
        "request gets 503 Service Unavailable with Retry-After at once (0: no limit).",
    )
    body_spool_size: int = setting(
        1024 * 1024,
        kind="size",
        section="HTTP",
        default_doc="1MiB",
        help="Request bodies larger than this are written to a temporary file by the "
        "reactor and reach the worker as a file-backed wsgi.input / receive() stream "
        "(0: never).",
    )
    max_body_size: int = setting(
        16 * 1024 * 1024,
        kind="size",
        section="HTTP",
        default_doc="16MiB",
        help="Largest request body accepted; a larger one gets 413 without being read.",
    )
    ws: str = setting(
        "auto",
        kind="choice",
        choices=("auto", "none"),
        section="WebSockets",
        help="auto: an ASGI app gets WebSocket sessions (framed in the reactor); none: an "
        "upgrade request reaches the app as plain HTTP. A WSGI app always gets plain HTTP.",
    )
    ws_ping_interval: float = setting(
        20.0,
        kind="float",
        section="WebSockets",
        help="Seconds between the server's pings on an open session (0: no pings).",
    )
    ws_ping_timeout: float = setting(
        20.0,
        kind="float",
        section="WebSockets",
        help="Seconds a client gets to answer a ping; past it the session closes with 1011.",
    )
    ws_max_size: int = setting(
        16 * 1024 * 1024,
        kind="size",
        section="WebSockets",
        default_doc="16MiB",
        help="Largest incoming message, after decompression; larger: close 1009.",
    )
    ws_max_queue: int = setting(
        32,
        kind="int",
        section="WebSockets",
        help="Messages the app may leave unread on a session before the reactor stops "
        "reading from that client (0: no limit).",
    )
    ws_per_message_deflate: bool = setting(
        True,
        kind="bool",
        section="WebSockets",
        help="Negotiate permessage-deflate (RFC 7692) when the client offers it.",
    )
    ws_drain_timeout: float = setting(
        -1.0,
        kind="float",
        section="WebSockets",
        default_doc="in time for the kill deadlines",
        help="Seconds open sessions of a reloaded or retiring worker, or of a server that "
        "shuts down, may go on before the reactor closes them (1012, or 1001 on shutdown). "
        "Default: until 5 s before --max-wait-time (reload; at most --graceful-timeout), "
        "1 s before --graceful-timeout (shutdown). A value given moves those deadlines "
        "instead when it is longer: no worker is killed under its sessions.",
    )
    broadcast_url: str = setting(
        "",
        kind="str",
        section="WebSockets",
        metavar="URL",
        help="redis://HOST:PORT/DB: group broadcasts (swserve.broadcast) also reach the "
        "group's members on every instance naming the same Redis (pip install "
        "'swserve[redis]'). Without it, groups are per instance.",
    )
    http2: str = setting(
        "off",
        kind="choice",
        choices=("on", "off"),
        section="HTTP/2",
        help="on: speak HTTP/2 (ALPN h2 on TLS listeners; h2c prior knowledge and Upgrade: "
        "h2c on cleartext ones, see --http2-cleartext), each stream dispatched to an idle "
        "worker. Needs swserve[http2]. Off by default until it has run in production.",
    )
    http2_cleartext: str = setting(
        "trusted",
        kind="choice",
        choices=("trusted", "any"),
        section="HTTP/2",
        help="trusted: h2c (cleartext HTTP/2) only from peers in --forwarded-allow-ips (a "
        "proxy); any: from every client (a smuggling risk behind a proxy that does not "
        "speak h2c).",
    )
    http2_max_concurrent_streams: int = setting(
        100,
        kind="int",
        section="HTTP/2",
        help="Streams a client may have open at once on one connection (SETTINGS); a client "
        "that opens more gets GOAWAY PROTOCOL_ERROR.",
    )
    http2_max_resets: int = setting(
        200,
        kind="int",
        section="HTTP/2",
        help="Streams a client may reset, and PINGs/SETTINGS it may send, per second on one "
        "connection; more: GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487).",
    )
    log_level: str = setting(
        "info",
        kind="choice",
        choices=("critical", "error", "warning", "info", "debug"),
        section="Logging",
        help="Error-log level. debug also shows tracebacks of app import errors.",
    )
    hooks: str = setting(
        "",
        kind="str",
        section="Processes",
        metavar="PATH|MODULE",
        help="A .py file or module defining any of on_master_start, on_manager_start, "
        "on_worker_start, on_worker_stop, on_worker_exit, on_worker_error, on_manager_stop, "
        "on_shutdown; each runs in the process its name says (see docs/hooks.md).",
    )
    slowlog_timeout: float = setting(
        0.0,
        kind="float",
        section="Worker life cycle",
        help="Log the Python stack of a request that has run this many seconds, once, "
        "with its method, path and elapsed time; the request goes on (0: off).",
    )
    heartbeat_timeout: float = setting(
        30.0,
        kind="float",
        section="Worker life cycle",
        help="A worker whose loop has not reported for this many seconds while no request "
        "accounts for it is taken as hung and replaced (0: off).",
    )
    access_log: bool = setting(
        False,
        kind="bool",
        section="Logging",
        help="Log one line per answered request on swserve.access (stderr); off by default, "
        "as in gunicorn.",
    )
    access_log_format: str = setting(
        "",
        kind="str",
        section="Logging",
        default_doc="gunicorn's default",
        help="gunicorn-style atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(b)s %(D)s %(w)s' (see "
        "docs/logging.md), or json for one JSON object per line.",
    )
    access_log_exclude: tuple[str, ...] = setting(
        (),
        kind="list",
        section="Logging",
        metavar="PATH",
        help="Request paths kept out of the access log (health checks). Repeatable.",
    )
    ready_file: str = setting(
        "",
        kind="str",
        section="Logging",
        help="Write the listening addresses to this file once every worker is ready.",
    )
    log_config: str = setting(
        "",
        kind="str",
        section="Logging",
        metavar="PATH",
        help="A logging.config.dictConfig file (.json or .toml) that replaces swserve's "
        "logging set-up; the loggers are swserve.error and swserve.access.",
    )
    log_file: str = setting(
        "",
        kind="str",
        section="Logging",
        metavar="PATH",
        help="Write the error and access logs to this file instead of stderr; SIGRTMIN "
        "to the master reopens it (for log rotation).",
    )
    metrics_bind: str = setting(
        "",
        kind="str",
        section="Observability",
        metavar="HOST:PORT",
        help="Serve Prometheus metrics (/metrics), /healthz and /readyz from the master "
        "on this address, aggregated over every worker (off when empty).",
    )
    control_socket: str = setting(
        "auto",
        kind="str",
        section="Observability",
        metavar="PATH",
        help="The master's control socket for `swserve ctl` and `swserve top` (mode 0600, "
        "only the server's user and root may connect); auto: next to --pid-file, else "
        "$XDG_RUNTIME_DIR/swserve/PID.sock or /tmp/swserve-UID/PID.sock; none: off.",
    )
    mode: str = setting(
        "process",
        kind="choice",
        choices=tuple(m.value for m in Mode),
        section="Processes",
        help="process: reactors in the master own the connections and hand complete "
        "requests to workers; base: every worker accepts and serves its own connections.",
    )
    reactors: int = setting(
        0,
        kind="int",
        section="Processes",
        default_doc="derived from --workers and the CPU cores",
        help="Reactor event loops in process mode (0: derived, see docs/architecture.md).",
    )
    daemon: bool = setting(
        False,
        kind="bool",
        section="Processes",
        help="Detach from the terminal and run in the background (use with --pid-file).",
    )
    pid_file: str = setting(
        "",
        kind="str",
        section="Processes",
        metavar="PATH",
        help="Write the master's pid to this file; removed on exit.",
    )
    user: str = setting(
        "",
        kind="str",
        section="Processes",
        help="Switch workers to this user (name or uid) after binding; needs root.",
    )
    group: str = setting(
        "",
        kind="str",
        section="Processes",
        help="Switch workers to this group (name or gid) after binding; needs root.",
    )
    umask: str = setting(
        "",
        kind="str",
        section="Processes",
        metavar="OCTAL",
        help="File mode creation mask of the server's processes, e.g. 0o027 (unchanged when empty).",
    )
    chdir: str = setting(
        "",
        kind="str",
        section="Processes",
        metavar="PATH",
        help="Change to this directory before loading the app.",
    )
    chroot: str = setting(
        "",
        kind="str",
        section="Processes",
        metavar="DIR",
        help="Workers chroot to this directory once the app is loaded, before they serve and "
        "drop to --user; needs root. The master and manager are not chrooted "
        "(docs/processes.md says what must be inside).",
    )
    cpu_affinity: bool = setting(
        False,
        kind="bool",
        section="Processes",
        help="Pin worker i (and reactor i) to CPU core i mod the number of cores "
        "(Swoole's open_cpu_affinity).",
    )
    reload: bool = setting(
        False,
        kind="bool",
        section="Development",
        help="Reload the workers gracefully when a watched file changes (development only; "
        "needs the watchfiles package).",
    )
    static: tuple[str, ...] = setting(
        (),
        kind="list",
        section="Static files",
        metavar="PREFIX=DIR",
        help="Serve the files of DIR under the URL path PREFIX from the reactor (the "
        "worker's own loop in base mode), without calling the app: GET and HEAD, ETag, "
        "ranges, precompressed .br/.gz siblings. Repeatable.",
    )
    static_max_age: int = setting(
        60,
        kind="int",
        section="Static files",
        help="Cache-Control max-age of static files, in seconds (0: no-cache).",
    )
    static_immutable: bool = setting(
        False,
        kind="bool",
        section="Static files",
        help="Files whose names carry a content hash (name.0123abcd89ef.css, as Django's "
        "ManifestStaticFilesStorage writes them) get a 10-year max-age and 'immutable'.",
    )
    static_index: str = setting(
        "",
        kind="str",
        section="Static files",
        metavar="NAME",
        help="The file a directory path (ending in /) serves, e.g. index.html (off: "
        "directories are not found). Never a directory listing.",
    )
    static_fallthrough: bool = setting(
        True,
        kind="bool",
        section="Static files",
        help="A missing file under a static prefix goes to the app (its 404 page, or its "
        "own route); with --no-static-fallthrough the reactor answers 404.",
    )
    static_follow_symlinks: bool = setting(
        False,
        kind="bool",
        section="Static files",
        help="Serve symlinks that point outside the static directory (inside ones are "
        "always served).",
    )
    static_allow_dotfiles: bool = setting(
        False,
        kind="bool",
        section="Static files",
        help="Serve files and directories whose names begin with a dot (refused by default).",
    )
    reload_dir: tuple[str, ...] = setting(
        (),
        kind="list",
        section="Development",
        metavar="PATH",
        help="Directories --reload watches (default: the working directory). Repeatable.",
    )
    reload_include: tuple[str, ...] = setting(
        (),
        kind="list",
        section="Development",
        metavar="GLOB",
        help="More file patterns that trigger a reload, besides *.py. Repeatable.",
    )
    reload_exclude: tuple[str, ...] = setting(
        (),
        kind="list",
        section="Development",
        metavar="GLOB",
        help="File patterns --reload ignores (default: .*, *.pyc, __pycache__). Repeatable.",
    )

    @property
    def jitter(self) -> int:
        return self.max_requests // 2 if self.max_requests_jitter < 0 else self.max_requests_jitter

    # WebSocket drains and the kill deadlines around them.  An explicit --ws-drain-timeout
    # moves the deadlines (no worker is killed under its sessions); the default moves
    # nothing: the sessions are closed in time for the deadlines HTTP already has.

    @property
    def ws_drain(self) -> float:
        """--ws-drain-timeout, with its default (--graceful-timeout) applied."""
        return self.graceful_timeout if self.ws_drain_timeout < 0 else self.ws_drain_timeout

    @property
    def ws_stop_drain(self) -> float:
        """How long sessions go on once a shutdown began, before their 1001."""
        if self.ws_drain_timeout >= 0:
            return self.ws_drain_timeout
        return max(0.0, self.graceful_timeout - 1.0)  # a second for the close handshakes

    @property
    def ws_retire_drain(self) -> float:
        """How long a retiring worker's sessions go on, before their 1012."""
        if self.ws_drain_timeout >= 0:
            return self.ws_drain_timeout
        return min(self.graceful_timeout, max(0.0, self.max_wait_time - WS_CLOSE_WAIT))

    @property
    def stop_wait(self) -> float:
        """How long a shutdown waits for what is open: --graceful-timeout, or an explicit
        --ws-drain-timeout plus a second for the 1001 close handshakes if that is longer."""
        if self.ws == "none" or self.ws_drain_timeout < 0:
            return self.graceful_timeout
        return max(self.graceful_timeout, self.ws_drain_timeout + 1.0)

    @property
    def retire_wait(self) -> float:
        """How long a retiring worker lives before SIGKILL: --max-wait-time, or the
        WebSocket drain plus the time its 1012 close handshakes take if that is longer."""
        if self.ws == "none" or self.ws_drain_timeout < 0:
            return self.max_wait_time
        return max(self.max_wait_time, self.ws_drain_timeout + WS_CLOSE_WAIT)

    @property
    def binds(self) -> tuple[str, ...]:
        return self.bind or (format_hostport(self.host, self.port),)


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _settings() -> tuple[Setting, ...]:
    out = []
    defaults = Config()
    for f in dataclasses.fields(Config):
        meta = f.metadata
        flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
        out.append(
            Setting(
                name=f.name,
                flags=flags,
                help=meta["help"],
                section=meta["section"],
                default=getattr(defaults, f.name),
                kind=meta["kind"],
                choices=meta["choices"],
                default_doc=meta["default_doc"],
                metavar=meta["metavar"],
                parse=parse_size if meta["kind"] == "size" else None,
            )
        )
    return tuple(out)


SETTINGS: Final[tuple[Setting, ...]] = _settings()
SETTINGS_BY_NAME: Final = {s.name: s for s in SETTINGS}

_CHECKS: Final[tuple[tuple[str, Callable[[Any], bool], str], ...]] = (
    ("workers", lambda v: v >= 1, "must be at least 1"),
    ("threads", lambda v: v >= 1, "must be at least 1"),
    ("asgi_concurrency", lambda v: v >= 1, "must be at least 1"),
    ("backlog", lambda v: v >= 1, "must be at least 1"),
    ("port", lambda v: 0 <= v <= 65535, "must be between 0 and 65535"),
    ("keep_alive", lambda v: v >= 0, "must not be negative"),
    ("graceful_timeout", lambda v: v >= 0, "must not be negative"),
    ("max_body_size", lambda v: v >= 0, "must not be negative"),
    ("body_spool_size", lambda v: v >= 0, "must not be negative"),
    ("max_requests", lambda v: v >= 0, "must not be negative"),
    ("max_requests_jitter", lambda v: v >= -1, "must not be negative"),
    ("max_worker_memory", lambda v: v >= 0, "must not be negative"),
    ("max_worker_lifetime", lambda v: v >= 0, "must not be negative"),
    ("max_wait_time", lambda v: v >= 0, "must not be negative"),
    ("max_concurrent_recycles", lambda v: v >= 1, "must be at least 1"),
    ("timeout", lambda v: v >= 0, "must not be negative"),
    ("task_workers", lambda v: v >= 0, "must not be negative"),
    ("task_queue_size", lambda v: v >= 1, "must be at least 1"),
    ("task_timeout", lambda v: v >= 0, "must not be negative"),
    ("task_max_requests", lambda v: v >= 0, "must not be negative"),
    ("header_timeout", lambda v: v > 0, "must be positive"),
    ("body_timeout", lambda v: v > 0, "must be positive"),
    ("limit_request_line", lambda v: v >= 16, "must be at least 16"),
    ("limit_request_fields", lambda v: v >= 1, "must be at least 1"),
    ("limit_request_field_size", lambda v: v >= 16, "must be at least 16"),
    ("max_queued_requests", lambda v: v >= 0, "must not be negative"),
    ("max_connections", lambda v: v >= 0, "must not be negative"),
    ("write_timeout", lambda v: v > 0, "must be positive"),
    ("reactors", lambda v: 0 <= v <= 64, "must be between 0 and 64"),
    ("ws_ping_interval", lambda v: v >= 0, "must not be negative"),
    ("ws_ping_timeout", lambda v: v > 0, "must be positive"),
    ("ws_max_size", lambda v: v >= 1, "must be at least 1"),
    ("ws_max_queue", lambda v: v >= 0, "must not be negative"),
    ("ws_drain_timeout", lambda v: v >= 0 or v == -1, "must not be negative"),
    ("static_max_age", lambda v: v >= 0, "must not be negative"),
    (
        "broadcast_url",
        lambda v: not v or v.startswith(("redis://", "rediss://", "unix://")),
        "must be a redis://, rediss:// or unix:// URL",
    ),
    ("http2_max_concurrent_streams", lambda v: v >= 1, "must be at least 1"),
    ("http2_max_resets", lambda v: v >= 1, "must be at least 1"),
    ("control_socket", lambda v: bool(v.strip()), "must be a path, auto or none"),
)


def build_config(values: dict[str, Any]) -> Config:
    """Validate ``values`` (setting name → parsed value) and freeze them into a Config.

    Raises:
        ConfigError: naming the first setting whose value cannot work.
    """
    found = problems(values)
    if found:
        raise ConfigError(found[0])
    return Config(**values)


def problems(values: dict[str, Any]) -> list[str]:
    """Every reason ``values`` cannot make a Config, one line each (``--check-config``)."""
    out = [f"unknown setting {name!r}" for name in sorted(set(values) - SETTINGS_BY_NAME.keys())]
    for name, check, what in _CHECKS:
        if name in values and not check(values[name]):
            flag = SETTINGS_BY_NAME[name].flags[0]
            out.append(f"{flag} {what} (got {values[name]!r})")
    fds: set[int] = set()
    for address in values.get("bind", ()):
        try:
            parsed = parse_bind(address)
        except ConfigError as exc:
            out.append(str(exc))
            continue
        if parsed.family == "fd":
            if parsed.fd in fds:  # two socket objects would close one descriptor twice
                out.append(f"bind address {address!r} is given twice")
            fds.add(parsed.fd)
    if values.get("uds_permissions"):
        try:
            parse_mode(values["uds_permissions"])
        except ConfigError as exc:
            out.append(f"--uds-permissions {exc}")
    out += _tls_problems(values)
    if values.get("broadcast_url") and importlib.util.find_spec("redis") is None:
        out.append("--broadcast-url needs the redis package: pip install 'swserve[redis]'")
    if values.get("umask"):
        try:
            parse_umask(values["umask"])
        except ConfigError as exc:
            out.append(str(exc))
    out += _dispatch_problems(values)
    if values.get("http2") == "on" and importlib.util.find_spec("h2") is None:
        out.append("--http2 on needs the h2 package: pip install 'swserve[http2]'")
    if values.get("reactors", 0) > 1 and values.get("mode") == "base":
        out.append("--reactors applies to process mode: in base mode every worker serves itself")
    if values.get("reload") and values.get("daemon"):
        # the reloader is a development tool that reports what changed to the
        # terminal a daemon has just detached from
        out.append("--reload cannot be used with --daemon: run the reloader in the foreground")
    out += proxy.setting_problems(values)
    for entry in values.get("static", ()):
        try:
            parse_mount(entry)
        except ValueError as exc:
            out.append(str(exc))
    if values.get("static") and values.get("chroot") and values.get("mode") == "base":
        # base-mode workers serve --static themselves, from inside the chroot, where the
        # directories (resolved outside it) and /proc (the symlink check) are not
        out.append("--static with --chroot needs process mode (the reactor serves the files)")
    for spec in values.get("process", ()):
        module, sep, attr = spec.partition(":")
        if not sep or not module or not attr:
            out.append(f"--process {spec!r}: expected module:callable")
    metrics = values.get("metrics_bind", "")
    if metrics:
        try:
            if parse_bind(metrics).family == "unix":
                raise ConfigError(f"{metrics!r} is a unix socket: give HOST:PORT")
        except ConfigError as exc:
            out.append(f"--metrics-bind: {exc}")
    return out


def _dispatch_problems(values: dict[str, Any]) -> list[str]:
    from swserve.settings.dispatch import AFFINITY, parse

    if "dispatch" not in values:
        return []
    try:
        mode = parse(values["dispatch"]).mode
    except ValueError as exc:
        return [f"--dispatch: {exc}"]
    if mode in AFFINITY and values.get("mode") == "base":
        # a base-mode worker accepts its own connections: nothing chooses a worker per request
        return [
            f"--dispatch {values['dispatch']} is a process-mode feature: in base mode each "
            "worker serves the connections it accepts (use --mode process)"
        ]
    return []


def _tls_problems(values: dict[str, Any]) -> list[str]:
    """TLS settings that cannot work together (files are read at start-up, in net/tls.py)."""
    out: list[str] = []
    if not values.get("ssl_certfile"):
        out.extend(
            f"{SETTINGS_BY_NAME[name].flags[0]} needs --ssl-certfile"
            for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs", "ssl_ciphers")
            if values.get(name)
        )
        if values.get("ssl_cert_reqs", "none") != "none":
            out.append("--ssl-cert-reqs needs --ssl-certfile")
    if values.get("ssl_cert_reqs", "none") != "none" and not values.get("ssl_ca_certs"):
        # without a CA nothing can verify a client certificate: every client would fail
        out.append(
            f"--ssl-cert-reqs {values['ssl_cert_reqs']} needs --ssl-ca-certs "
            "(the CAs that client certificates are checked against)"
        )
    return out


_MODE_RE: Final = re.compile(r"^(?:0o?)?([0-7]{1,3})$")


def parse_mode(text: str) -> int:
    """``"0o660"``, ``"0660"`` or ``"660"`` → 0o660 (always octal, as chmod reads it)."""
    match = _MODE_RE.match(text.strip().lower())
    if match is None:
        raise ConfigError(f"{text!r} is not an octal file mode (try 0o660 or 660)")
    return int(match.group(1), 8)


@dataclass(frozen=True, slots=True)
class BindAddress:
    family: str  # "inet" | "inet6" | "unix" | "fd"
    host: str
    port: int
    path: str = ""
    fd: int = -1  # family "fd": a listening socket inherited from the parent process


def parse_bind(address: str) -> BindAddress:
    """``127.0.0.1:8000``, ``[::1]:8000``, ``:8000``, ``unix:/run/app.sock``, ``fd://3`` → BindAddress."""
    if address.startswith("fd://"):
        number = address[5:]
        if not number.isdigit():
            raise ConfigError(f"bind address {address!r}: fd://N takes a file descriptor number")
        return BindAddress("fd", "", 0, fd=int(number))
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise ConfigError(f"bind address {address!r} has no path")
        return BindAddress("unix", "", 0, path)
    if address.startswith("["):
        host, sep, port = address[1:].partition("]:")
        family = "inet6"
    else:
        host, sep, port = address.rpartition(":")
        family = "inet"
        if ":" in host:
            raise ConfigError(f"bind address {address!r}: write IPv6 hosts as [HOST]:PORT")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"bind address {address!r} is not HOST:PORT, [HOST]:PORT, unix:PATH or fd://N"
        )
    return BindAddress(family, host or "0.0.0.0", int(port))
