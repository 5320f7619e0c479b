"""User hooks (``--hooks path/to/hooks.py`` or a module name), each run in its process.

=====================  ==========  ===================================================
hook                   process     when
=====================  ==========  ===================================================
on_master_start        master      every worker is ready and the server is listening
on_manager_start       manager     before it forks the first worker
on_worker_start        worker      the app is loaded, before the first request
on_worker_stop         worker      it has been told to stop (retired or shut down)
on_worker_exit         worker      while a stopping worker waits for in-flight requests
on_worker_error        manager     a worker exited abnormally (code, or signal)
on_task_worker_start   task worker before it takes its first task (--task-workers N)
on_task_worker_stop    task worker it is stopping (retired, reloaded or shut down)
on_manager_stop        manager     every worker has stopped
on_shutdown            master      the server has stopped, just before exit
=====================  ==========  ===================================================

Fork order (SWOOLE-MODEL.md §6): the module is imported once in the master
before anything is forked, so module-level state is copied into every
process.  State set in ``on_master_start`` is *not* seen by the manager or
any worker (they are forked before it runs); state set in
``on_manager_start`` *is* seen by every worker, including those forked later
by a reload.  A hook that raises is logged; in ``on_worker_start`` or
``on_manager_start`` that is a boot failure (exit code 3 at start-up).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from swserve.config import Config
from swserve.errors import ConfigError

log = logging.getLogger("swserve.error")

HOOKS: Final = (
    "on_master_start",
    "on_manager_start",
    "on_worker_start",
    "on_worker_stop",
    "on_worker_exit",
    "on_worker_error",
    "on_task_worker_start",
    "on_task_worker_stop",
    "on_manager_stop",
    "on_shutdown",
)


@dataclass
class Server:
    """What a hook receives: the settings and where it runs."""

    config: Config
    role: str  # "master" | "manager" | "worker" | "task worker"
    pid: int
    master_pid: int


class Hooks:
    def __init__(self, module: ModuleType | None) -> None:
        self.module = module

    def call(self, name: str, server: Server, *args: Any) -> bool:
        """Run hook ``name`` if defined; log (never raise) what it raises; True if it succeeded."""
        fn = getattr(self.module, name, None) if self.module is not None else None
        if fn is None:
            return True
        try:
            fn(server, *args)
        except Exception:
            log.exception("hook %s raised", name)
            return False
        return True


def load(spec: str) -> Hooks:
    """Import the hooks module (a .py path or a module name).

    Raises:
        ConfigError: it cannot be found or imported, or it defines a misspelt hook.
    """
    if not spec:
        return Hooks(None)
    try:
        if spec.endswith(".py") or os.sep in spec:
            from importlib.util import module_from_spec, spec_from_file_location  # a file only

            path = Path(spec)
            if not path.is_file():
                raise ConfigError(f"--hooks {spec}: no such file")
            module_spec = spec_from_file_location("swserve_user_hooks", path)
            assert module_spec is not None
            assert module_spec.loader is not None
            module = module_from_spec(module_spec)
            sys.modules["swserve_user_hooks"] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"--hooks {spec}: {type(exc).__name__}: {exc}") from exc
    for name in dir(module):
        if name.startswith("on_") and name not in HOOKS and callable(getattr(module, name)):
            raise ConfigError(f"--hooks {spec}: unknown hook {name!r} (known: {', '.join(HOOKS)})")
    return Hooks(module)
