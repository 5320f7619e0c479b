"""Hooks that append "hook role pid args" lines to the file named by $HOOKS_LOG."""

from __future__ import annotations

import os


def _record(name: str, server, *args) -> None:
    with open(os.environ["HOOKS_LOG"], "a") as f:
        f.write(f"{name} {server.role} {os.getpid()} {' '.join(map(str, args))}\n")


def on_master_start(server):
    _record("on_master_start", server)


def on_manager_start(server):
    _record("on_manager_start", server)


def on_worker_start(server, worker_id):
    _record("on_worker_start", server, worker_id)


def on_worker_stop(server, worker_id):
    _record("on_worker_stop", server, worker_id)


def on_worker_exit(server, worker_id):
    _record("on_worker_exit", server, worker_id)


def on_worker_error(server, worker_id, pid, exit_code, signal):
    _record("on_worker_error", server, worker_id, pid, exit_code, signal)


def on_manager_stop(server):
    _record("on_manager_stop", server)


def on_shutdown(server):
    _record("on_shutdown", server)
