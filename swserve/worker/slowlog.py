"""The slow-request log: a request past --slowlog-timeout gets its stack logged, once.

The reactor notices the slow request and sends the worker SIGUSR2; the
handler, running in the worker's main thread, formats the stack of the
thread (WSGI) or task (ASGI) serving every request that is past the limit
and not logged yet.  It writes with one ``os.write`` to stderr rather than
through ``logging``, whose locks a signal handler must not take.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Running:
    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    thread: int = 0  # WSGI: the thread serving it
    stack: Callable[[], list[types.FrameType]] | None = None  # ASGI: the task's frames
    logged: bool = False


DISPATCH_SLACK = 0.25  # of the limit: how much later than the reactor our clock may start


class SlowLog:
    def __init__(self, timeout: float, worker_id: int) -> None:
        self.timeout = timeout
        self.worker_id = worker_id
        self.running: dict[tuple[int, int], Running] = {}

    def install(self) -> None:
        if self.timeout:
            signal.signal(signal.SIGUSR2, self._dump)

    def _dump(self, signum: int, frame: types.FrameType | None) -> None:
        self.dump(frame)

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
            if request.stack is not None:
                task_frames = request.stack()
                summary = traceback.StackSummary.extract((f, f.f_lineno) for f in task_frames)
                stack = "".join(summary.format()) or "".join(traceback.format_stack(frame))
            else:
                thread_frame = frames.get(request.thread, frame)
                stack = "".join(traceback.format_stack(thread_frame))
            text = (
                f"[slowlog] {request.method} {request.path} has run {elapsed:.1f}s in worker "
                f"{self.worker_id} (pid {os.getpid()}); its stack:\n{stack}"
            )
            os.write(2, text.encode(errors="replace"))
