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

# Where this process's task calls go (swserve/tasks/client.py).  None outside swserve;
# "" in a server without task workers; else the task socket's path.  Set by the
# manager in every worker, task worker and user process it forks.
TASK_SOCKET: str | None = None
TASK_SOCKET_NAME: Final = "tasks.sock"  # beside the reactors' sockets, in the 0700 directory


def ignore_master_signals() -> None:
    for sig in (*MASTER_SIGNALS, DUMP_SIGNAL):
        signal.signal(sig, signal.SIG_IGN)


def die_with_parent(parent: int) -> bool:
    """Ask the kernel for SIGTERM when our parent dies (PR_SET_PDEATHSIG); False if it has."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    return os.getppid() == parent


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
