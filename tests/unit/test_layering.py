"""Cores stay sans-IO: they import no asyncio, socket, os, signal, threading or time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "swserve"
CORES = [
    *sorted((ROOT / "protocol").glob("*.py")),
    ROOT / "ipc" / "framing.py",
    ROOT / "ipc" / "codec.py",
    ROOT / "reactor" / "dispatcher.py",
    ROOT / "reactor" / "affinity.py",
    ROOT / "manager" / "policy.py",
    ROOT / "metrics" / "requests.py",
    ROOT / "metrics" / "exposition.py",
    ROOT / "control" / "protocol.py",
    ROOT / "control" / "render.py",
    ROOT / "tasks" / "broker.py",
    ROOT / "tasks" / "codec.py",
    ROOT / "manager" / "user_processes.py",
]
FORBIDDEN = {"asyncio", "socket", "os", "signal", "threading", "time", "selectors", "subprocess"}


# policy.py names signals (SIGTERM, SIGKILL, and signal names in log lines): it
# imports the module for its constants and never installs or sends a signal.
ALLOWED = {
    ROOT / "manager" / "policy.py": {"signal"},
    ROOT / "manager" / "user_processes.py": {"signal"},
}


@pytest.mark.parametrize("path", CORES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top not in FORBIDDEN - ALLOWED.get(path, set()), f"{path.name} imports {name}"


def test_policy_only_reads_signal_constants() -> None:
    source = (ROOT / "manager" / "policy.py").read_text()
    for call in ("signal.signal(", "os.kill(", "signal.pthread", "signal.set_wakeup_fd("):
        assert call not in source
