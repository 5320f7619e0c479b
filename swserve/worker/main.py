"""Worker entry point: set up one process, load the app, serve until told to stop.

Order: reset signals (the master owns SIGINT/SIGHUP; we take orders from the
manager), name the process, connect to the reactor and say HELLO, import the
app (a failure is reported as one BOOT_ERROR frame and exit code 3, so the
master can print it once and stop without a respawn loop), say READY, run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

from swserve.apps.loader import detect_interface, load
from swserve.config import Config
from swserve.errors import EXIT_APP_LOAD, EXIT_OK, AppLoadError
from swserve.hooks import Hooks, Server as HookServer
from swserve.ipc import codec, framing, push
from swserve.ipc.buffers import widen
from swserve.ipc.control import Mode
from swserve.net.listeners import Listener
from swserve.process.setup import in_worker
from swserve.process.shared import ignore_master_signals
from swserve.process.title import set_title
from swserve.worker.slowlog import SlowLog, set_dump_dir

log = logging.getLogger("swserve.error")

# base mode's serve loop (swserve/base/server.py: run)
BaseServe = Callable[
    [Config, Any, str, socket.socket, list[Listener], int, "WorkerHooks", int], int
]


class WorkerHooks:
    """The worker's stop and exit hooks, bound to this worker; each runs at most once."""

    def __init__(self, hooks: Hooks, server: HookServer, worker_id: int) -> None:
        self.hooks = hooks
        self.server = server
        self.worker_id = worker_id
        self.ran: set[str] = set()

    def stopping(self) -> None:
        self._once("on_worker_stop")

    def waiting(self) -> None:
        self._once("on_worker_exit")

    def _once(self, name: str) -> None:
        if name not in self.ran:
            self.ran.add(name)
            self.hooks.call(name, self.server, self.worker_id)


def run(
    config: Config,
    worker_id: int,
    cell: int,
    ipc_paths: list[str],
    hooks: Hooks,
    master_pid: int,
    listeners: list[Listener],
    serve_base: BaseServe | None = None,
    report_at: int = 0,
) -> int:
    """Run worker ``worker_id`` (1-based) to completion; return its exit code.

    ``ipc_paths`` are the reactors' sockets (one per reactor; a base-mode
    worker's link to the master for its control frames is the first).
    ``listeners`` are the client sockets a base-mode worker accepts on
    (empty in process mode, where the reactors own them).  ``serve_base`` is
    base mode's serve loop (``base/server.py: run``), handed in by the manager:
    ``base/`` sits above ``worker/`` (it runs a reactor too), so this module never
    imports it.  ``report_at``: a base-mode worker reports its count at once when
    it has served that many requests (its --max-requests, as the supervision
    policy chose it).
    """
    ignore_master_signals()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    set_title(f"swserve: worker {worker_id}")
    in_worker(config, worker_id)  # --cpu-affinity
    # line-buffered, so a print() from the app is written whole and is not lost
    # if the worker is killed (PIPE_BUF makes each short line's write atomic)
    sys.stdout.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    pid = os.getpid()
    set_dump_dir(os.path.dirname(ipc_paths[0]))  # for `swserve ctl slowlog`
    socks = []
    for path in ipc_paths:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        widen(sock)
        socks.append(sock)
        try:
            sock.connect(path)
        except OSError as exc:
            log.error("worker %d: cannot reach the reactor at %s: %s", worker_id, path, exc)
            for opened in socks:
                opened.close()
            return EXIT_OK  # the master is gone: nothing to serve
        sock.sendall(
            framing.encode(framing.HELLO, 0, 0, 0, codec.encode_hello(worker_id, pid, cell))
        )
    # server push (swserve.push): this process's own links to the same sockets
    push.configure(ipc_paths, base=config.mode == Mode.BASE)
    sock = socks[0]  # boot errors go to the first reactor: one report is enough
    if config.mode == Mode.PROCESS:  # file responses go to the reactors as descriptors
        from swserve.static import handoff

        handoff.link(ipc_paths)
    try:
        app = load(config.app, factory=config.factory, app_dir=config.app_dir)
        interface = config.interface if config.interface != "auto" else detect_interface(app)
    except AppLoadError as exc:
        message = str(exc)
        if config.log_level == "debug":
            message += "\n" + "".join(traceback.format_exception(exc.__cause__ or exc)).rstrip()
        sock.sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, message.encode()))
        return EXIT_APP_LOAD
    server = HookServer(config, "worker", pid, master_pid)
    if not hooks.call("on_worker_start", server, worker_id):
        message = f"the on_worker_start hook failed in worker {worker_id}"
        sock.sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, message.encode()))
        return EXIT_APP_LOAD
    lifecycle = WorkerHooks(hooks, server, worker_id)
    try:
        if serve_base is not None:
            try:
                return serve_base(
                    config, app, interface, sock, listeners, worker_id, lifecycle, report_at
                )
            except AppLoadError:
                return EXIT_APP_LOAD
        if interface == "asgi":
            from swserve.worker import runner_asgi

            try:
                worker = runner_asgi.ASGIWorker(app, config, socks, worker_id, lifecycle, cell)
                return runner_asgi.run(worker)
            except AppLoadError:
                return EXIT_APP_LOAD
        from swserve.apps.wsgi import WSGIAdapter
        from swserve.ipc.channel_set import SyncChannelSet
        from swserve.ipc.channel_sync import SyncChannel
        from swserve.net.proxy import Frontend
        from swserve.worker.runner_wsgi import WSGIWorker

        adapter = WSGIAdapter(
            app,
            multithread=config.threads > 1,
            multiprocess=config.workers > 1,
            frontend=Frontend.from_config(config),
        )
        channel: SyncChannel | SyncChannelSet = (
            SyncChannel(sock) if len(socks) == 1 else SyncChannelSet(socks, on_idle=None)
        )
        slowlog = SlowLog(config.slowlog_timeout, worker_id)
        if config.chroot:  # the app is loaded, nothing is served yet
            from swserve.process import chroot

            try:
                chroot.confine(config)
            except AppLoadError as exc:
                sock.sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, str(exc).encode()))
                return EXIT_APP_LOAD
        channel.send(
            framing.encode(
                framing.READY, 0, 0, 0, codec.encode_ready(worker_id, pid, config.threads, "wsgi")
            )
        )
        return WSGIWorker(channel, adapter, config.threads, lifecycle, slowlog, cell).run()
    except (BrokenPipeError, ConnectionResetError):
        return EXIT_OK  # the reactor is gone: the master is stopping or died
    finally:
        sys.stdout.flush()
        for opened in socks:
            opened.close()
