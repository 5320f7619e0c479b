"""The slow-request log: a request past --slowlog-timeout gets its stack logged, once.

The reactor notices the slow request and sends the worker SIGUSR2; the
handler, running in the worker's main thread, formats the stack of the
thread (WSGI) or task (ASGI) serving every request that is past the limit
and not logged yet.  It writes with one ``os.write`` to stderr rather than
through ``logging``, whose locks a signal handler must not take.

``swserve ctl slowlog SLOT`` asks for a stack *now* with :data:`DUMP_SIGNAL`:
the handler writes every running request's stack (with --slowlog-timeout,
which tracks them) or else every thread's and task's stack to the log and to
``stack-PID.txt`` in :data:`DUMP_DIR` (the master's private IPC directory, set
by worker/main.py), renamed into place whole, where the master reads it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field

from swserve.process.shared import DUMP_SIGNAL


@dataclass
class Running:
    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    thread: int = 0  # WSGI: the thread serving it
    stack: Callable[[], list[types.FrameType]] | None = None  # ASGI: the task's frames
    logged: bool = False


DUMP_DIR = ""  # where on-demand dumps go (the IPC directory); empty: not installed


def set_dump_dir(directory: str) -> None:
    global DUMP_DIR  # one per worker process, set once at start-up
    DUMP_DIR = directory


def dump_path(directory: str, pid: int) -> str:
    return os.path.join(directory, f"stack-{pid}.txt")


DISPATCH_SLACK = 0.25  # of the limit: how much later than the reactor our clock may start


class SlowLog:
    def __init__(self, timeout: float, worker_id: int) -> None:
        self.timeout = timeout
        self.worker_id = worker_id
        self.running: dict[tuple[int, int], Running] = {}

    def install(self) -> None:
        if self.timeout:
            signal.signal(signal.SIGUSR2, self._dump)
        if DUMP_DIR:
            signal.signal(DUMP_SIGNAL, self._dump_now)

    def _dump(self, signum: int, frame: types.FrameType | None) -> None:
        self.dump(frame)

    def _dump_now(self, signum: int, frame: types.FrameType | None) -> None:
        text = self.stacks_now(frame)
        os.write(2, text.encode(errors="replace"))
        final = dump_path(DUMP_DIR, os.getpid())
        try:
            with open(final + ".tmp", "w", errors="replace") as out:
                out.write(text)
            os.replace(final + ".tmp", final)
        except OSError as exc:
            os.write(2, f"[stack] cannot hand the stack to the master: {exc}\n".encode())

    def stacks_now(self, frame: types.FrameType | None) -> str:
        """The stack of every request running now, else of every thread and task."""
        now = time.monotonic()
        who = f"worker {self.worker_id} (pid {os.getpid()})"
        frames = sys._current_frames()
        parts = [
            f"[stack] {request.method} {request.path} has run {now - request.started:.1f}s "
            f"in {who}; its stack:\n{self._stack_of(request, frames, frame)}"
            for request in list(self.running.values())
        ]
        if parts:
            return "".join(parts)
        for ident, thread_frame in frames.items():
            parts.append(
                f"[stack] thread {ident} of {who}:\n"
                + "".join(
                    traceback.format_stack(
                        frame if ident == threading.main_thread().ident else thread_frame
                    )
                )
            )
        loop = asyncio._get_running_loop()
        if loop is not None:
            for task in asyncio.all_tasks(loop):
                summary = traceback.StackSummary.extract((f, f.f_lineno) for f in task.get_stack())
                parts.append(
                    f"[stack] task {task.get_name()} of {who}:\n" + "".join(summary.format())
                )
        return "".join(parts)

    @staticmethod
    def _stack_of(
        request: Running,
        frames: dict[int, types.FrameType],
        frame: types.FrameType | None,
    ) -> str:
        if request.stack is not None:
            task_frames = request.stack()
            summary = traceback.StackSummary.extract((f, f.f_lineno) for f in task_frames)
            return "".join(summary.format()) or "".join(traceback.format_stack(frame))
        return "".join(traceback.format_stack(frames.get(request.thread, frame)))

    def dump(self, frame: types.FrameType | None) -> None:
        """Log the stack of every request past the limit and not logged yet.

        ``frame`` is the interrupted frame: the stack of a request running on
        the thread that took the signal.
        """
        now = time.monotonic()
        frames = sys._current_frames()
        # The reactor asks when a request is past the limit by *its* clock, which started
        # at dispatch; ours started when the request got here, a little later (more under
        # load).  Requests within DISPATCH_SLACK of the limit count: requiring the full
        # limit here skipped the request the reactor had meant, and it asks only once.
        limit = self.timeout * (1 - DISPATCH_SLACK)
        due = [r for r in self.running.values() if not r.logged and now - r.started >= limit]
        for request in due:
            elapsed = now - request.started
            request.logged = True
            stack = self._stack_of(request, frames, frame)
            text = (
                f"[slowlog] {request.method} {request.path} has run {elapsed:.1f}s in worker "
                f"{self.worker_id} (pid {os.getpid()}); its stack:\n{stack}"
            )
            os.write(2, text.encode(errors="replace"))
