"""Sans-IO supervision decisions: how to describe a worker's exit, and what to do next.

No I/O, no clock reads: the manager shell passes in what it saw.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Final

from swserve.errors import EXIT_APP_LOAD

RESPAWN: Final = "respawn"
HALT_BOOT: Final = "halt-boot"  # the app cannot load: stop the server with exit code 3
FORGET: Final = "forget"  # we are stopping, or we retired it on purpose


@dataclass(frozen=True, slots=True)
class Exit:
    worker_id: int
    pid: int
    code: int | None  # exit code, or None if killed by a signal
    signal: int | None
    expected: bool  # we sent the signal or asked it to stop


def describe(ex: Exit) -> str:
    """One log line for a worker's exit, naming the signal and guessing OOM for a stray SIGKILL."""
    who = f"worker {ex.worker_id} (pid {ex.pid})"
    if ex.signal is not None:
        name = (
            signal.Signals(ex.signal).name
            if ex.signal in signal.Signals.__members__.values()
            else str(ex.signal)
        )
        line = f"{who} was killed by {name}"
        if ex.signal == signal.SIGKILL and not ex.expected:
            line += " (perhaps out of memory?)"
        return line
    return f"{who} exited with code {ex.code}"


def decide(ex: Exit, *, stopping: bool) -> str:
    if stopping or ex.expected:
        return FORGET
    if ex.code == EXIT_APP_LOAD:
        return HALT_BOOT
    return RESPAWN


def from_status(worker_id: int, pid: int, status: int, expected: bool) -> Exit:
    """Build an Exit from a ``waitpid`` status (the os.W* macros are pure functions)."""
    import os

    if os.WIFSIGNALED(status):
        return Exit(worker_id, pid, None, os.WTERMSIG(status), expected)
    return Exit(worker_id, pid, os.waitstatus_to_exitcode(status), None, expected)
