"""Start-up imports only what a default start-up uses.

Every module a process imports costs start-up time (it is read, and compiled when
there is no ``.pyc``), so the modules behind optional settings are imported where
the setting is used.  Each case imports in a fresh interpreter: ``sys.modules``
of this one holds whatever other tests imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from swserve.manager.main import worker_modules

# Imported only when their setting asks for them (or, for the last ones, never by a
# default start-up): the comment says which setting.
DEFERRED = (
    "logging.config",  # --log-config
    "logging.handlers",
    "email.utils",  # never: reactor/core.py formats the Date header itself
    "difflib",  # a misspelt setting in a file
    "swserve.process.daemon",  # --daemon, --pid-file
    "swserve.process.privileges",  # --user, --group
    "swserve.process.chroot",  # --chroot
    "swserve.process.reloader",  # --reload
    "watchfiles",
    "swserve.process.affinity",  # --cpu-affinity
    "swserve.net.tls",  # --ssl-certfile
    "swserve.metrics.endpoint",  # --metrics-bind
    "swserve.logs.access",  # --access-log
    "swserve.protocol.h11_parser",  # --http h11
    "h11",
    "swserve.base.server",  # --mode base, in the workers
    "swserve.protocol.websocket",  # the first WebSocket upgrade
    "websockets",
)


def _imported(code: str) -> set[str]:
    # without coverage's start-up hook: measuring imports tomllib and coverage itself
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(json.loads(done.stdout))


@pytest.mark.timeout(60)
def test_the_master_imports_no_optional_module() -> None:
    modules = _imported("import swserve.cli, swserve.master.main")
    assert "swserve.master.main" in modules
    assert sorted(modules & set(DEFERRED)) == []


@pytest.mark.timeout(60)
def test_the_default_settings_read_no_file_parser() -> None:
    # tomllib only once a settings file is found (the working directory has none here)
    modules = _imported(
        "import os, pathlib, tempfile\n"
        "from swserve.settings.sources import merge\n"
        "merge({}, {}, None, pathlib.Path(tempfile.mkdtemp()))"
    )
    assert "tomllib" not in modules
    assert "difflib" not in modules


@pytest.mark.timeout(60)
def test_no_task_workers_cost_no_import() -> None:
    # --task-workers 0 (the default): neither the master, the manager nor a worker
    # imports the task modules; `import swserve` alone does not either
    modules = _imported("import swserve, swserve.cli, swserve.master.main, swserve.manager.main")
    assert sorted(m for m in modules if m.startswith("swserve.tasks")) == []
    for interface in ("wsgi", "asgi"):
        for mode in ("process", "base"):
            assert not any(m.startswith("swserve.tasks") for m in worker_modules(mode, interface))


def test_a_process_mode_worker_never_needs_base_mode() -> None:
    for interface in ("auto", "wsgi", "asgi"):
        assert "swserve.base.server" not in worker_modules("process", interface)
    for interface in ("auto", "wsgi", "asgi"):
        assert "swserve.base.server" in worker_modules("base", interface)


def test_a_declared_interface_preloads_its_own_adapter_only() -> None:
    assert "swserve.apps.asgi" not in worker_modules("process", "wsgi")
    assert "swserve.worker.runner_asgi" not in worker_modules("process", "wsgi")
    assert "swserve.worker.runner_wsgi" not in worker_modules("process", "asgi")
    # auto: the app's interface is known only once a worker has imported it
    auto = worker_modules("process", "auto")
    assert {"swserve.worker.runner_wsgi", "swserve.worker.runner_asgi"} <= set(auto)
    assert len(auto) == len(set(auto))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["process", "base"])
@pytest.mark.parametrize("interface", ["auto", "wsgi", "asgi"])
def test_what_is_preloaded_is_what_the_worker_imports(mode: str, interface: str) -> None:
    """Every module named exists, and worker/main.py's lazy imports are among them."""
    names = worker_modules(mode, interface)
    modules = _imported("\n".join(f"import {name}" for name in names))
    assert set(names) <= modules
    if mode == "process" and interface in ("auto", "wsgi"):
        assert {"swserve.ipc.channel_sync", "swserve.worker.runner_wsgi"} <= modules
    if mode == "process" and interface in ("auto", "asgi"):
        assert "swserve.worker.runner_asgi" in modules
