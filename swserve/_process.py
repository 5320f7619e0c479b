"""Process plumbing shared by the master, the manager and the workers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Final

# Signals that only the master acts on: Ctrl-C reaches the whole foreground
# process group, and reload/scale signals are commands for the master.
MASTER_SIGNALS: Final = (
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTTIN,
    signal.SIGTTOU,
)

# ``swserve ctl slowlog``: a worker writes its stacks now (worker/slowlog.py).  Its
# default action would end the process, so it is ignored until a worker's handler
# is installed (the manager ignores it too, and its forks inherit that).
DUMP_SIGNAL: Final = signal.SIGRTMIN + 1


def ignore_master_signals() -> None:
    for sig in (*MASTER_SIGNALS, DUMP_SIGNAL):
        signal.signal(sig, signal.SIG_IGN)


def reap_nowait() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of every child that has exited, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status
