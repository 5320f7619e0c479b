"""The exceptions of the task API (``swserve.TaskQueueFull`` and the others).

A task's own exception is raised again in its caller, of the same type when it
can be rebuilt there; its remote traceback is attached as ``__cause__``, a
:class:`RemoteTraceback` whose text is the task worker's traceback (what
``concurrent.futures.ProcessPoolExecutor`` does).
"""

from __future__ import annotations

from swserve.errors import SwserveError


class TaskError(SwserveError):
    """Base class of the errors the task API raises itself."""


class TaskQueueFull(TaskError):
    """Every task worker is busy and ``--task-queue-size`` tasks already wait."""


class TaskTimeout(TaskError, TimeoutError):
    """The task ran past ``--task-timeout``, or the caller's own ``timeout`` passed."""


class TaskWorkerLost(TaskError):
    """The task worker running the task died (or the server stopped) before it answered."""


class TasksUnavailable(TaskError, RuntimeError):
    """The task API was called outside swserve, or with ``--task-workers 0``."""


class TaskFailed(TaskError):
    """The task raised an exception that could not be rebuilt in the caller.

    ``type_name`` names its type (``module.QualName``); the message is its ``str()``.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


class RemoteTraceback(Exception):
    """The task worker's traceback of a task's exception, attached as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text.rstrip()}\n"""'
