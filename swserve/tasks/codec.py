"""Task payloads, sans-IO: what TASK_* frames carry (frame types in ipc/framing.py).

=============  ==============================================================
frame          payload
=============  ==============================================================
TASK_HELLO     ``u8 role | u32 slot | u32 pid`` (role: CALLER or TASK_WORKER)
TASK_SUBMIT    ``u16 name length | name | pickle((args, kwargs))``
TASK_RUN       the TASK_SUBMIT payload, as it came
TASK_RESULT    flags: the outcome.  OK: ``pickle(value)``; RAISED:
               ``pickle((type name, message, traceback text, pickle(exc) or b""))``;
               QUEUE_FULL, TIMEOUT, LOST: a UTF-8 message
=============  ==============================================================

Pickle carries only a task's arguments, result and exception: objects of the
app's own, between processes of the same server, over a socket in a private
0700 directory.  The master never unpickles anything (it forwards payloads as
bytes); the HTTP frames never use pickle.

The callable travels by its importable name, ``module:qualname``, checked at
the call site: a lambda, a closure, a bound method or anything defined in
``__main__`` is a ``TypeError`` there, not a failure in the task worker.
"""

from __future__ import annotations

import importlib
import pickle
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any, Final

from swserve.tasks.errors import (
    RemoteTraceback,
    TaskFailed,
    TaskQueueFull,
    TaskTimeout,
    TaskWorkerLost,
)

CALLER: Final = 0
TASK_WORKER: Final = 1
_HELLO: Final = struct.Struct("<BII")
_NAME: Final = struct.Struct("<H")

# TASK_RESULT outcomes (the frame's flags byte)
OK: Final = 0
RAISED: Final = 1
QUEUE_FULL: Final = 2
TIMEOUT: Final = 3
LOST: Final = 4
OUTCOMES: Final = {OK: "ok", RAISED: "raised", QUEUE_FULL: "full", TIMEOUT: "timeout", LOST: "lost"}

_names: dict[Callable[..., Any], str] = {}  # callable → its checked name
_resolved: dict[str, Callable[..., Any]] = {}  # name → callable, in task workers


def encode_hello(role: int, slot: int, pid: int) -> bytes:
    return _HELLO.pack(role, slot, pid)


def decode_hello(payload: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """→ (role, slot, pid); ValueError if it is not one."""
    if len(payload) != _HELLO.size:
        raise ValueError(f"TASK_HELLO of {len(payload)} bytes")
    role, slot, pid = _HELLO.unpack(payload)
    if role not in (CALLER, TASK_WORKER):
        raise ValueError(f"TASK_HELLO with role {role}")
    return role, slot, pid


def callable_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level callable, checked to import back to ``fn``.

    Raises:
        TypeError: ``fn`` cannot be found again by name in another process.
    """
    try:
        return _names[fn]
    except (KeyError, TypeError):  # TypeError: an unhashable callable
        pass
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    what = getattr(fn, "__name__", None) or repr(fn)
    if not callable(fn):
        raise TypeError(f"a task must be a callable, not {type(fn).__name__}")
    if not module or not qualname or "<" in qualname:
        raise TypeError(
            f"{what} cannot be run as a task: a task is sent by name, so it must be a "
            "module-level function (not a lambda, a closure or a nested function)"
        )
    if module == "__main__":
        raise TypeError(
            f"{what} is defined in __main__: put it in a module the task workers can import"
        )
    name = f"{module}:{qualname}"
    try:
        found = resolve(name, cache=False)
    except (ImportError, AttributeError):
        found = None
    if found is not fn:
        raise TypeError(
            f"{what} cannot be run as a task: {name} does not import back to it (a task must "
            "be a module-level function, not a bound method or a decorated copy)"
        )
    try:
        _names[fn] = name
    except TypeError:
        pass
    return name


def resolve(name: str, *, cache: bool = True) -> Callable[..., Any]:
    """Import ``module:qualname`` → the callable.

    Raises:
        ImportError, AttributeError: the name does not lead to a callable.
    """
    fn = _resolved.get(name)
    if fn is not None:
        return fn
    module_name, _, qualname = name.partition(":")
    obj: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise AttributeError(f"{name} is not callable")
    if cache:
        _resolved[name] = obj
    return obj  # type: ignore[no-any-return]


def encode_task(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The TASK_SUBMIT payload.  Raises what pickle raises for an unpicklable argument."""
    raw = name.encode()
    return b"".join(
        (_NAME.pack(len(raw)), raw, pickle.dumps((args, kwargs), pickle.HIGHEST_PROTOCOL))
    )


def task_name(payload: bytes | bytearray | memoryview) -> str:
    """The callable's name alone (the master reads it for log lines; it never unpickles)."""
    if len(payload) < _NAME.size:
        return "?"
    (size,) = _NAME.unpack_from(payload)
    return bytes(payload[_NAME.size : _NAME.size + size]).decode(errors="replace")


def decode_task(
    payload: bytes | bytearray | memoryview,
) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    (size,) = _NAME.unpack_from(payload)
    name = bytes(payload[_NAME.size : _NAME.size + size]).decode()
    args, kwargs = pickle.loads(payload[_NAME.size + size :])
    return name, args, kwargs


def encode_value(value: Any) -> tuple[int, bytes]:
    """(outcome, payload) of a task that returned ``value`` (RAISED if it cannot be pickled)."""
    try:
        return OK, pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        error = TypeError(f"the task's result could not be pickled: {exc}")
        return encode_exception(error, "")


def encode_exception(exc: BaseException, tb_text: str | None = None) -> tuple[int, bytes]:
    """(RAISED, payload) for ``exc``; its traceback text is taken from it unless given."""
    if tb_text is None:
        tb_text = "".join(traceback.format_exception(exc))
    cls = type(exc)
    type_name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    try:
        rebuilt = pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
        pickle.loads(rebuilt)  # an exception whose __init__ takes other arguments fails here
    except Exception:
        rebuilt = b""
    return RAISED, pickle.dumps((type_name, str(exc), tb_text, rebuilt), pickle.HIGHEST_PROTOCOL)


def decode_result(outcome: int, payload: bytes | bytearray | memoryview) -> Any:
    """The task's value, or raise what it raised (or the error the broker answered)."""
    if outcome == OK:
        return pickle.loads(payload)
    if outcome == RAISED:
        raise rebuild_exception(payload)
    message = bytes(payload).decode(errors="replace")
    if outcome == QUEUE_FULL:
        raise TaskQueueFull(message)
    if outcome == TIMEOUT:
        raise TaskTimeout(message)
    raise TaskWorkerLost(message)


def rebuild_exception(payload: bytes | bytearray | memoryview) -> BaseException:
    type_name, message, tb_text, rebuilt = pickle.loads(payload)
    exc: BaseException
    try:
        exc = pickle.loads(rebuilt) if rebuilt else TaskFailed(type_name, message)
    except Exception:  # its class cannot be imported here
        exc = TaskFailed(type_name, message)
    exc.__cause__ = RemoteTraceback(tb_text)
    return exc
