"""Base mode's worker entry point: the worker's own start-up, then base mode's serve loop.

The manager calls this instead of ``worker/main.py: run`` when ``--mode base``;
everything up to the loop (signals, title, HELLO, loading the app, hooks) is the
worker's, and the loop is ``base/server.py``'s.
"""

from __future__ import annotations

from swserve.config import Config
from swserve.hooks import Hooks
from swserve.net.listeners import Listener
from swserve.worker import main as worker_main


def run(
    config: Config,
    worker_id: int,
    cell: int,
    ipc_paths: list[str],
    hooks: Hooks,
    master_pid: int,
    listeners: list[Listener],
) -> int:
    """Run base-mode worker ``worker_id`` (1-based) to completion; return its exit code."""
    from swserve.base import server  # only here: a process-mode worker never loads it

    return worker_main.run(
        config, worker_id, cell, ipc_paths, hooks, master_pid, listeners, server.run
    )
