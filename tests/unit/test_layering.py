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
    ROOT / "settings" / "dispatch.py",
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


# -- package layers ----------------------------------------------------------------------
#
# Role packages import only downward: a process's package may use the packages of the
# processes it starts or hosts, never those of its parents or siblings.  Every other
# package (and the root modules but cli.py) is shared: it imports no role package.
# Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are not
# counted.
#
#   cli.py, __main__.py     the command line
#   master/                 listeners, signals, the manager's pid, reactor 0
#   manager/                forks workers, task workers, user processes
#   base/                   --mode base: a worker that hosts a reactor
#   reactor/ worker/ tasks/ each other's peers: they talk over sockets, never by import
#   everything else         shared (net/, process/, protocol/, ipc/, apps/, static/, …)
ROLES = {"master": 4, "manager": 3, "base": 2, "reactor": 1, "worker": 1, "tasks": 1}
ENTRY = {"cli", "__main__"}

# Known upward imports that another change removes; each names the change.  None may be
# added here for new code.
PENDING: dict[tuple[str, str], str] = {
    ("tasks", "swserve.manager.policy"): "issue 11 item 4: max-requests decided by the policy",
}


def _package(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def _rank(package: str) -> int:
    return 9 if package in ENTRY else ROLES.get(package, 0)


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every ``swserve`` import not under ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("swserve.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "swserve":
                found += [(node.lineno, f"swserve.{a.name}") for a in node.names]
            elif node.module.startswith("swserve."):
                found.append((node.lineno, node.module))
    return found


def upward_imports(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = _package(path, root)
        for line, module in _runtime_imports(ast.parse(path.read_text())):
            target = module.split(".")[1]
            if target == source or source in ENTRY or (source, module) in PENDING:
                continue
            if _rank(target) and _rank(target) >= _rank(source):
                problems.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return problems


def test_role_packages_import_only_downward() -> None:
    assert upward_imports(ROOT) == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    fake = tmp_path / "swserve"
    for package, code in [
        ("worker", "from swserve.reactor.core import Reactor\n"),
        ("net", "from swserve import master\n"),
        ("reactor", "if TYPE_CHECKING:\n    from swserve.worker import main\n"),
    ]:
        (fake / package).mkdir(parents=True)
        (fake / package / "x.py").write_text(code)
    assert upward_imports(fake) == [
        "swserve/net/x.py:1 imports swserve.master",
        "swserve/worker/x.py:1 imports swserve.reactor.core",
    ]


def test_apps_do_not_index_the_ipc_wire_layout() -> None:
    for path in sorted((ROOT / "apps").glob("*.py")):
        assert "HEAD_FIELDS" not in path.read_text(), path.name
