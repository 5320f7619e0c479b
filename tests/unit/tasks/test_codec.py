"""Task payloads: names checked at the call site, arguments, results and remote exceptions."""

from __future__ import annotations

import functools
import math
import os

import pytest

from swserve.process import shared as _process
from swserve.tasks import client, codec
from swserve.tasks.errors import (
    RemoteTraceback,
    TaskFailed,
    TaskQueueFull,
    TasksUnavailable,
    TaskTimeout,
    TaskWorkerLost,
)


def module_level(a: int, b: int = 0) -> int:
    return a + b


class Holder:
    def method(self) -> None: ...


class NeedsTwo(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} {b}")


def test_module_level_functions_and_builtins_have_names() -> None:
    assert codec.callable_name(module_level) == f"{__name__}:module_level"
    assert codec.callable_name(math.factorial) == "math:factorial"
    assert codec.callable_name(os.getpid) == "posix:getpid"
    assert codec.resolve(f"{__name__}:module_level") is module_level


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (lambda: 1, "module-level function"),
        (Holder().method, "does not import back"),
        (functools.partial(module_level, 1), "module-level function"),
        (3, "must be a callable"),
    ],
)
def test_what_cannot_be_sent_by_name_is_a_type_error(fn: object, says: str) -> None:
    with pytest.raises(TypeError, match=says):
        codec.callable_name(fn)  # type: ignore[arg-type]


def test_a_closure_is_refused() -> None:
    def inner() -> None: ...

    with pytest.raises(TypeError, match="closure"):
        codec.callable_name(inner)


def test_task_payload_round_trip() -> None:
    payload = codec.encode_task("m:f", (1, "two", [3.0]), {"k": b"v"})
    assert codec.task_name(payload) == "m:f"
    assert codec.decode_task(payload) == ("m:f", (1, "two", [3.0]), {"k": b"v"})
    assert codec.task_name(b"") == "?"


def test_results_and_rebuilt_exceptions() -> None:
    outcome, data = codec.encode_value({"a": 1})
    assert codec.decode_result(outcome, data) == {"a": 1}
    try:
        raise KeyError("missing")
    except KeyError as exc:
        outcome, data = codec.encode_exception(exc)
    assert outcome == codec.RAISED
    with pytest.raises(KeyError, match="missing") as info:
        codec.decode_result(outcome, data)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "test_results_and_rebuilt_exceptions" in cause.text
    assert 'raise KeyError("missing")' in str(cause)


def test_an_exception_pickle_cannot_rebuild_becomes_task_failed() -> None:
    outcome, data = codec.encode_exception(NeedsTwo(1, 2), "remote text")
    with pytest.raises(TaskFailed, match=r"test_codec\.NeedsTwo: 1 2") as info:
        codec.decode_result(outcome, data)
    assert info.value.type_name.endswith("test_codec.NeedsTwo")
    assert isinstance(info.value.__cause__, RemoteTraceback)


def test_an_unpicklable_result_is_a_type_error_in_the_caller() -> None:
    outcome, data = codec.encode_value(lambda: 1)
    with pytest.raises(TypeError, match="could not be pickled"):
        codec.decode_result(outcome, data)


@pytest.mark.parametrize(
    ("outcome", "error"),
    [(codec.QUEUE_FULL, TaskQueueFull), (codec.TIMEOUT, TaskTimeout), (codec.LOST, TaskWorkerLost)],
)
def test_broker_outcomes_raise_their_errors(outcome: int, error: type[Exception]) -> None:
    with pytest.raises(error, match="why"):
        codec.decode_result(outcome, b"why")


def test_hello() -> None:
    assert codec.decode_hello(codec.encode_hello(codec.TASK_WORKER, 2, 99)) == (1, 2, 99)
    with pytest.raises(ValueError, match="role"):
        codec.decode_hello(codec.encode_hello(7, 0, 0))
    with pytest.raises(ValueError, match="bytes"):
        codec.decode_hello(b"x")


def test_outside_swserve_every_call_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import swserve

    monkeypatch.setattr(_process, "TASK_SOCKET", None)
    with pytest.raises(TasksUnavailable, match="only inside swserve"):
        swserve.task_sync(module_level, 1)
    with pytest.raises(TasksUnavailable, match="only inside swserve"):
        swserve.task_nowait(module_level, 1)
    with pytest.raises(TasksUnavailable, match="only inside swserve"):
        asyncio.run(swserve.task(module_level, 1))
    monkeypatch.setattr(_process, "TASK_SOCKET", "")
    with pytest.raises(TasksUnavailable, match="--task-workers N"):
        swserve.task_sync(module_level, 1)
    assert issubclass(swserve.TasksUnavailable, RuntimeError)


def test_a_lambda_is_refused_when_called_not_when_awaited() -> None:
    with pytest.raises(TypeError, match="module-level"):
        client.task(lambda: 1)  # no await: the call itself raises


def test_arguments_over_16_mib_are_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match="16 MiB"):
        client._payload(module_level, (b"x" * (17 * 1024 * 1024),), {})
