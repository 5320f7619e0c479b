"""A default start-up imports what it serves with, and not the modules of unused settings.

Each process writes the modules it holds from a hook (apps/import_probe.py):
the master once it is listening, the manager before its first fork, a worker
once its app is loaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import APPS, Starter
from tests.unit.test_startup_imports import DEFERRED

pytestmark = pytest.mark.timeout(60)


def _modules(directory: Path, role: str) -> set[str]:
    path = directory / f"{role}.json"
    deadline = time.monotonic() + 10
    while not path.exists():  # the master writes its own after "Listening on"
        assert time.monotonic() < deadline, f"no {path.name}"
        time.sleep(0.01)  # polling a file the server writes, with a deadline
    return set(json.loads(path.read_text()))


def test_default_start_up_imports(serve: Starter, tmp_path: Path) -> None:
    serve(
        "wsgi_echo:app", "--hooks", str(APPS / "import_probe.py"), workers=1,
        env={"IMPORT_PROBE_DIR": str(tmp_path)},
    )  # fmt: skip
    master = _modules(tmp_path, "master")
    assert "swserve.reactor.core" in master
    assert sorted(master & set(DEFERRED)) == []
    # uvloop is imported before the manager is forked, so no process imports it twice
    assert "uvloop" in _modules(tmp_path, "manager")
    worker = _modules(tmp_path, "worker")
    assert "swserve.worker.runner_wsgi" in worker
    assert sorted(worker & set(DEFERRED)) == []


def test_a_declared_interface_loads_one_adapter(serve: Starter, tmp_path: Path) -> None:
    serve(
        "wsgi_echo:app", "--interface", "wsgi", "--hooks", str(APPS / "import_probe.py"),
        workers=1, env={"IMPORT_PROBE_DIR": str(tmp_path)},
    )  # fmt: skip
    worker = _modules(tmp_path, "worker")
    assert "swserve.apps.wsgi" in worker
    assert "swserve.apps.asgi" not in worker
    assert "swserve.worker.runner_asgi" not in worker
