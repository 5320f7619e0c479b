"""A task worker process: run one task at a time, as the broker hands them out.

Forked by the manager like a worker.  It does not import the app: each task
names its callable (``module:qualname``), imported on first use from the
code on disk now, so a reload (SIGUSR2 or SIGHUP) runs new code.

Order: reset signals, name the process, put ``--app-dir`` on ``sys.path``,
run ``on_task_worker_start`` (a failure is a boot failure: exit code 3),
connect to the task socket and say TASK_HELLO (that is its readiness), then
loop: TASK_RUN → run → TASK_RESULT.  TASK_STOP (retired) or EOF ends the
loop; SIGTERM ends it too, after the task under way (the manager kills it
after ``--graceful-timeout``).  A task that returns an awaitable is run to
completion on the task worker's own event loop, so ``async def`` tasks work.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import sys
import traceback
import types
from typing import Any

from swserve.config import Config
from swserve.errors import EXIT_APP_LOAD, EXIT_OK
from swserve.hooks import Hooks, Server as HookServer
from swserve.ipc import framing
from swserve.process.shared import ignore_master_signals
from swserve.process.title import set_title
from swserve.tasks import codec

log = logging.getLogger("swserve.error")


class _Stop(BaseException):
    """SIGTERM while waiting for a task: leave the loop."""


class TaskWorker:
    def __init__(self, sock: socket.socket, slot: int) -> None:
        self.sock = sock
        self.slot = slot
        self.running = False
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_sigterm(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = True
        if not self.running:
            raise _Stop

    def serve(self) -> None:
        decoder = framing.FrameDecoder()
        sock = self.sock
        while not self.stopping:
            try:
                data = sock.recv(256 * 1024)
                self.running = True
            except _Stop:
                return
            except ConnectionResetError:
                return
            if not data:
                return  # the master is gone
            for kind, flags, gid, _, payload in decoder.feed(data):
                if kind == framing.TASK_STOP:
                    self.stopping = True
                elif kind == framing.TASK_RUN:
                    outcome, result = self.run_one(
                        bytes(payload), bool(flags & framing.TASK_NOWAIT)
                    )
                    sock.sendall(framing.encode(framing.TASK_RESULT, outcome, gid, 0, result))
            self.running = False

    def run_one(self, payload: bytes, nowait: bool) -> tuple[int, bytes]:
        name = codec.task_name(payload)
        try:
            name, args, kwargs = codec.decode_task(payload)
            result: Any = codec.resolve(name)(*args, **kwargs)
            if inspect.isawaitable(result):
                result = self.loop().run_until_complete(_wait(result))
        except Exception as exc:
            tb = exc.__traceback__
            text = "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb else None))
            if nowait:  # nobody else will see it
                log.error(
                    "task %s (fire-and-forget) failed on task worker %d:\n%s",
                    name,
                    self.slot,
                    text.rstrip(),
                )
            else:
                log.warning(
                    "task %s failed on task worker %d: %s: %s",
                    name,
                    self.slot,
                    type(exc).__name__,
                    exc,
                )
            return codec.encode_exception(exc, text)
        outcome, data = codec.encode_value(result)
        if len(data) > framing.MAX_PAYLOAD:
            too_big = ValueError(
                f"the result of {name} pickles to {len(data)} bytes, over the 16 MiB a task "
                "may return: store it and return a path or a key"
            )
            return codec.encode_exception(too_big, "")
        return outcome, data

    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            from swserve.process.loop import new_event_loop

            self._loop = new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def run(config: Config, slot: int, path: str, hooks: Hooks, master_pid: int) -> int:
    """Run task worker ``slot`` (1-based) until it is stopped; return its exit code."""
    ignore_master_signals()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    set_title(f"swserve: task worker {slot}")
    sys.stdout.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    if config.app_dir and config.app_dir not in sys.path:
        sys.path.insert(0, config.app_dir)
    pid = os.getpid()
    server = HookServer(config, "task worker", pid, master_pid)
    if not hooks.call("on_task_worker_start", server, slot):
        log.error("the on_task_worker_start hook failed in task worker %d", slot)
        return EXIT_APP_LOAD
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    worker = TaskWorker(sock, slot)
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    try:
        sock.connect(path)
        hello = codec.encode_hello(codec.TASK_WORKER, slot, pid)
        sock.sendall(framing.encode(framing.TASK_HELLO, 0, 0, 0, hello))
        worker.serve()
    except _Stop:
        pass
    except OSError as exc:  # the master is gone: nothing to serve
        log.debug("task worker %d: %s", slot, exc)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sock.close()
        hooks.call("on_task_worker_stop", server, slot)
        sys.stdout.flush()
    return EXIT_OK
