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

from swserve.apps.loader import detect_interface, load
from swserve.config import Config
from swserve.errors import EXIT_APP_LOAD, EXIT_OK, AppLoadError
from swserve.ipc import codec, framing
from swserve.procname import set_title

log = logging.getLogger("swserve.error")


def run(config: Config, worker_id: int, ipc_path: str) -> int:
    """Run worker ``worker_id`` (1-based) to completion; return its exit code."""
    for sig in (
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGTTIN,
        signal.SIGTTOU,
    ):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    set_title(f"swserve: worker {worker_id}")
    # line-buffered, so a print() from the app is written whole and is not lost
    # if the worker is killed (PIPE_BUF makes each short line's write atomic)
    sys.stdout.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    pid = os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(ipc_path)
    except OSError as exc:
        log.error("worker %d: cannot reach the reactor at %s: %s", worker_id, ipc_path, exc)
        return EXIT_OK  # the master is gone: nothing to serve
    sock.sendall(framing.encode(framing.HELLO, 0, 0, 0, codec.encode_hello(worker_id, pid, 0)))
    try:
        app = load(config.app, factory=config.factory, app_dir=config.app_dir)
        interface = config.interface if config.interface != "auto" else detect_interface(app)
    except AppLoadError as exc:
        message = str(exc)
        if config.log_level == "debug":
            message += "\n" + "".join(traceback.format_exception(exc.__cause__ or exc)).rstrip()
        sock.sendall(framing.encode(framing.BOOT_ERROR, 0, 0, 0, message.encode()))
        return EXIT_APP_LOAD
    try:
        if interface == "asgi":
            from swserve.worker import runner_asgi

            try:
                return runner_asgi.run(app, config, sock, worker_id)
            except AppLoadError:
                return EXIT_APP_LOAD
        from swserve.apps.wsgi import WSGIAdapter
        from swserve.ipc.channel_sync import SyncChannel
        from swserve.worker.runner_wsgi import WSGIWorker

        adapter = WSGIAdapter(app, multithread=config.threads > 1, multiprocess=config.workers > 1)
        channel = SyncChannel(sock)
        channel.send(
            framing.encode(
                framing.READY, 0, 0, 0, codec.encode_ready(worker_id, pid, config.threads, "wsgi")
            )
        )
        return WSGIWorker(channel, adapter, config.threads).run()
    except (BrokenPipeError, ConnectionResetError):
        return EXIT_OK  # the reactor is gone: the master is stopping or died
    finally:
        sys.stdout.flush()
        sock.close()
