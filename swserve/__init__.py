"""swserve: a production application server for Python WSGI and ASGI apps.

It follows Swoole's process model: a master whose reactors own every client
connection, a manager that supervises workers, and workers that run the app.
Internal modules never import from this package's ``__init__``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# The task API (swserve/tasks/), imported on first use: a server without task
# workers, and every process that never calls it, does not import it.
_TASK_API = {
    "task": "swserve.tasks.client",
    "task_sync": "swserve.tasks.client",
    "task_nowait": "swserve.tasks.client",
    "TaskError": "swserve.tasks.errors",
    "TaskQueueFull": "swserve.tasks.errors",
    "TaskTimeout": "swserve.tasks.errors",
    "TaskWorkerLost": "swserve.tasks.errors",
    "TasksUnavailable": "swserve.tasks.errors",
    "TaskFailed": "swserve.tasks.errors",
    "RemoteTraceback": "swserve.tasks.errors",
}

__all__ = ["__version__", *_TASK_API]


def __getattr__(name: str) -> Any:
    module = _TASK_API.get(name)
    if module is None:
        raise AttributeError(f"module 'swserve' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
