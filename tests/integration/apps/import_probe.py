"""Hooks that write each process's imported modules to $IMPORT_PROBE_DIR/<role>.json."""

from __future__ import annotations

import json
import os
import sys


def _write(role: str) -> None:
    path = os.path.join(os.environ["IMPORT_PROBE_DIR"], f"{role}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(sorted(sys.modules), f)
    os.replace(path + ".tmp", path)  # whole, or not at all


def on_master_start(server):
    _write("master")


def on_manager_start(server):  # before the manager imports the workers' modules
    _write("manager")


def on_worker_start(server, worker_id):
    _write("worker")
