"""master/control.py: each command's effect on the master, without a socket.

A fake master holds real WorkerSlots; what the server would tell the manager
and which signals it would handle are recorded.
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from swserve.config import Config
from swserve.control.protocol import encode_request
from swserve.ipc import control as plane
from swserve.master.control import ControlServer
from swserve.master.stats import Stats
from swserve.reactor.dispatcher import WorkerSlot
from swserve.reactor.ws_conn import WsSessions


@dataclass
class FakeLink:
    worker_id: int
    pid: int
    slot: WorkerSlot | None
    interface: str = "wsgi"
    inflight: dict[tuple[int, int], Any] = field(default_factory=dict)


@dataclass
class FakeReactor:
    links: dict[int, FakeLink]
    sessions: dict[int, Any] = field(default_factory=dict)
    queue: list[Any] = field(default_factory=list)
    ws: WsSessions = field(default_factory=lambda: WsSessions(Config(), lambda key: None))


@dataclass
class FakeMaster:
    reactor: FakeReactor
    config: Config = field(default_factory=Config)
    stats: Stats = field(default_factory=Stats)
    announced: bool = True
    stopping: bool = False
    manager_pid: int = 1
    children: list[Any] = field(default_factory=list)


def make(
    *workers: tuple[int, int, bool],
) -> tuple[ControlServer, FakeMaster, list[plane.Message], list[int]]:
    links = {}
    for key, (worker_id, pid, retiring) in enumerate(workers, 1):
        slot = WorkerSlot(key, worker_id, pid, 1)
        slot.retiring = retiring
        links[key] = FakeLink(worker_id, pid, slot)
    master = FakeMaster(FakeReactor(links))
    told: list[plane.Message] = []
    signals: list[int] = []
    server = ControlServer(master, told.append, signals.append, "/nonexistent")  # type: ignore[arg-type]
    return server, master, told, signals


def ask(server: ControlServer, cmd: str, **args: Any) -> dict[str, Any]:
    answer = asyncio.run(server.answer(encode_request(cmd, args)))
    assert answer.endswith(b"\n")
    result: dict[str, Any] = json.loads(answer)
    return result


def test_recycle_asks_the_manager_for_the_graceful_replacement_of_that_slot() -> None:
    server, _, told, _ = make((1, 9000101, False), (2, 9000102, False))
    assert ask(server, "recycle", slot=2) == {
        "v": 1,
        "ok": True,
        "result": {"slot": 2, "pid": 9000102},
    }
    assert told == [plane.Recycle(9000102, plane.Reason.MANUAL)]
    assert server.pending == {9000102: "manual"}


def test_a_retiring_or_missing_slot_is_refused() -> None:
    server, _, told, _ = make((1, 9000101, True), (1, 9000111, False))
    assert ask(server, "recycle", slot=1)["result"]["pid"] == 9000111  # the serving one
    for bad in ({"slot": 5}, {}):
        answer = ask(server, "recycle", **bad)
        assert answer["ok"] is False
    assert ask(server, "slowlog", slot=5)["error"] == "there is no serving worker in slot 5"
    assert told == [plane.Recycle(9000111, plane.Reason.MANUAL)]


def test_scale_to_and_by() -> None:
    server, _, told, _ = make((1, 9000101, False))
    assert ask(server, "scale", to=3)["result"] == {"to": 3}
    assert ask(server, "scale", by=-2)["result"] == {"by": -2}
    assert ask(server, "scale", by=1)["result"] == {"by": 1}
    assert told == [plane.ScaleTo(3), plane.Scale(-1), plane.Scale(-1), plane.Scale(1)]
    for bad, message in (
        ({"to": 0}, "scale: the number of workers must be 1 … 1024"),
        ({"by": 0}, "scale: by must be ±1 … ±1024"),
        ({"to": 2, "by": 1}, "scale takes either to (N) or by (+K/-K)"),
        ({}, "scale takes either to (N) or by (+K/-K)"),
    ):
        assert ask(server, "scale", **bad) == {"v": 1, "ok": False, "error": message}
    assert len(told) == 4


def test_reload_marks_every_serving_worker_and_task_workers_need_some() -> None:
    server, master, told, signals = make((1, 9000101, False), (2, 9000102, True))
    assert ask(server, "reload")["result"] == {"reloading": 1}
    assert told == [plane.Reload()]
    assert server.pending == {9000101: "reload"}
    assert ask(server, "reload", task_workers=True)["error"] == (
        "this server has no task workers (--task-workers)"
    )
    assert signals == []
    # a server with task workers (their setting lands with them)
    master.config = SimpleNamespace(task_workers=2, mode="process")  # type: ignore[assignment]
    assert ask(server, "reload", task_workers=True)["ok"] is True
    assert signals == [signal.SIGUSR2]


def test_while_stopping_only_questions_are_answered() -> None:
    server, master, told, _ = make((1, 9000101, False))
    master.stopping = True
    assert ask(server, "recycle", slot=1)["error"] == "the server is shutting down"
    assert ask(server, "workers")["ok"] is True
    assert told == []


@pytest.mark.parametrize("line", [b"{}", b"nonsense", encode_request("bogus")])
def test_a_bad_request_gets_an_error_answer(line: bytes) -> None:
    server, *_ = make((1, 9000101, False))
    answer = json.loads(asyncio.run(server.answer(line)))
    assert answer["ok"] is False
    assert answer["error"]


def test_workers_rows_from_the_reactors_slots() -> None:
    server, master, _, _ = make((1, 9000101, False), (2, 9000102, True))
    master.reactor.links[1].slot.inflight = 1  # type: ignore[union-attr]
    master.reactor.links[1].slot.served = 7  # type: ignore[union-attr]
    master.reactor.links[1].slot.recycle_asked = True  # type: ignore[union-attr]
    master.stats.worker_retired(9000102, "scale-down")  # the manager's "retire PID REASON"
    rows = ask(server, "workers")["result"]
    assert [(r["slot"], r["pid"], r["state"], r["requests"], r["recycle"]) for r in rows] == [
        (1, 9000101, "busy", 7, "max-requests"),
        (2, 9000102, "retiring", 0, "scale-down"),
    ]
    assert rows[0]["rss"] is None  # no such process: /proc has nothing to say


def test_a_failing_view_is_an_error_answer_not_a_dead_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, master, _, _ = make((1, 9000101, False))
    master.reactor.links = None  # type: ignore[assignment]
    answer = ask(server, "workers")
    assert answer["ok"] is False
    assert answer["error"].startswith("internal error: AttributeError(")
    assert "control socket:" in caplog.text
