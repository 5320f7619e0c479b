"""The supervisor's decisions, with a fake clock and fake pids: no processes."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Sequence

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swserve.errors import EXIT_APP_LOAD
from swserve.manager.policy import (
    CRASH_LOOP,
    Exit,
    Halt,
    Kill,
    Log,
    Reloaded,
    Retire,
    Spawn,
    Supervisor,
    describe,
)


class Harness:
    """Plays the manager shell: turns Spawn actions into pids, records the rest."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.pids = itertools.count(100)
        self.now = 0.0
        self.log: list[object] = []

    def run(self, actions: Sequence[object]) -> list[object]:
        out = []
        for action in actions:
            self.log.append(action)
            out.append(action)
            if isinstance(action, Spawn):
                self.sup.spawned(action.slot, next(self.pids), self.now)
        return out

    def start_all_ready(self) -> None:
        self.run(self.sup.start())
        for pid in list(self.sup.workers):
            self.run(self.sup.ready(pid, self.now))

    def pid_of(self, slot: int) -> int:
        (worker,) = [w for w in self.sup.workers.values() if w.slot == slot and not w.retiring]
        return worker.pid


def test_describe() -> None:
    assert describe(Exit(2, 123, 1, None, False)) == "worker 2 (pid 123) exited with code 1"
    assert (
        describe(Exit(1, 7, None, signal.SIGSEGV, False))
        == "worker 1 (pid 7) was killed by SIGSEGV"
    )
    assert describe(Exit(1, 7, None, signal.SIGKILL, False)).endswith("(perhaps out of memory?)")
    assert "memory" not in describe(Exit(1, 7, None, signal.SIGKILL, True))


def test_start_spawns_every_slot() -> None:
    h = Harness(Supervisor(3))
    assert [a.slot for a in h.run(h.sup.start()) if isinstance(a, Spawn)] == [1, 2, 3]


def test_recycle_starts_replacement_before_retiring() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    old = h.pid_of(1)
    actions = h.run(h.sup.recycle(old, "max-requests", h.now))
    assert actions == [Spawn(1, "max-requests")]
    assert not any(isinstance(a, Retire) for a in actions)  # old still serves
    new = max(h.sup.workers)
    assert h.run(h.sup.ready(new, h.now)) == [Retire(old, "max-requests")]
    assert h.run(h.sup.exited(old, 0, None, h.now)) == []  # expected: no respawn
    assert sorted(w.slot for w in h.sup.workers.values()) == [1, 2]


def test_one_recycle_at_a_time() -> None:
    h = Harness(Supervisor(3, max_concurrent=1))
    h.start_all_ready()
    pids = [h.pid_of(s) for s in (1, 2, 3)]
    first = h.run(h.sup.recycle(pids[0], "max-requests", h.now))
    second = h.run(h.sup.recycle(pids[1], "max-requests", h.now))
    assert len([a for a in first if isinstance(a, Spawn)]) == 1
    assert second == []  # queued behind the first
    new = max(h.sup.workers)
    h.run(h.sup.ready(new, h.now))
    assert h.run(h.sup.exited(pids[0], 0, None, h.now)) == [Spawn(2, "max-requests")]


def test_reload_replaces_every_worker_and_reports_done() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    old = set(h.sup.workers)
    pending = h.run(h.sup.reload(h.now))
    for _ in range(10):
        for pid in [p for p, w in h.sup.workers.items() if not w.ready]:
            pending = h.run(h.sup.ready(pid, h.now))
        for action in list(pending):
            if isinstance(action, Retire):
                pending = h.run(h.sup.exited(action.pid, 0, None, h.now))
        if any(isinstance(a, Reloaded) for a in h.log):
            break
    assert any(isinstance(a, Reloaded) for a in h.log)
    assert not (old & set(h.sup.workers))
    assert len(h.sup.workers) == 2


def test_second_reload_is_coalesced() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    h.run(h.sup.reload(h.now))
    again = h.run(h.sup.reload(h.now))
    assert all(isinstance(a, Log) for a in again)
    assert h.sup.stats.reloads == 1


def test_sync_reload_retires_first() -> None:
    h = Harness(Supervisor(2, reload_mode="sync"))
    h.start_all_ready()
    old = h.pid_of(1)
    actions = h.run(h.sup.reload(h.now))
    assert Retire(old, "reload-sync") in actions
    assert not any(isinstance(a, Spawn) for a in actions)
    assert h.run(h.sup.exited(old, 0, None, h.now))[0] == Spawn(1, "reload-sync")


def test_broken_replacement_abandons_the_reload() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    before = set(h.sup.workers)
    h.run(h.sup.reload(h.now))
    new = max(h.sup.workers)
    actions = h.run(h.sup.exited(new, EXIT_APP_LOAD, None, h.now))
    assert any(isinstance(a, Log) and "abandoned" in a.message for a in actions)
    assert not any(isinstance(a, Halt | Retire) for a in actions)
    assert set(h.sup.workers) == before  # the old workers keep serving
    assert not h.sup.reloading


def test_boot_failure_at_start_halts_with_3() -> None:
    h = Harness(Supervisor(2))
    h.run(h.sup.start())
    pid = min(h.sup.workers)
    (action,) = h.run(h.sup.exited(pid, EXIT_APP_LOAD, None, h.now))
    assert isinstance(action, Halt)
    assert action.code == 3


def test_crash_respawns_and_a_crash_loop_halts() -> None:
    h = Harness(Supervisor(1))
    h.start_all_ready()
    pid = h.pid_of(1)
    actions = h.run(h.sup.exited(pid, None, signal.SIGSEGV, h.now))
    assert Spawn(1, "crash") in actions
    assert any(isinstance(a, Log) and "SIGSEGV" in a.message for a in actions)
    for i in range(CRASH_LOOP):
        pid = max(h.sup.workers)
        actions = h.run(h.sup.exited(pid, EXIT_APP_LOAD, None, h.now))
        if i < CRASH_LOOP - 1:
            assert Spawn(1, "crash") in actions
    assert isinstance(actions[-1], Halt)


def test_retiring_worker_is_killed_after_max_wait() -> None:
    h = Harness(Supervisor(1, max_wait=30))
    h.start_all_ready()
    old = h.pid_of(1)
    h.run(h.sup.recycle(old, "max-requests", h.now))
    h.run(h.sup.ready(max(h.sup.workers), h.now))
    h.now = 29.9
    assert h.run(h.sup.tick(h.now)) == []
    h.now = 30.0
    assert Kill(old, signal.SIGKILL, "max-requests") in h.run(h.sup.tick(h.now))


def test_timeout_replaces_now_and_escalates() -> None:
    h = Harness(Supervisor(1, kill_grace=5))
    h.start_all_ready()
    old = h.pid_of(1)
    actions = h.run(h.sup.timed_out(old, h.now))
    assert actions == [Kill(old, signal.SIGTERM, "timeout"), Spawn(1, "timeout")]
    h.now = 5
    assert h.run(h.sup.tick(h.now)) == [Kill(old, signal.SIGKILL, "timeout")]
    assert h.run(h.sup.exited(old, None, signal.SIGKILL, h.now)) == []  # replacement exists


def test_scale_up_and_down() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    assert h.run(h.sup.scale(1, h.now)) == [Spawn(3, "scale-up")]
    third = max(h.sup.workers)
    h.run(h.sup.ready(third, h.now))
    assert h.run(h.sup.scale(-1, h.now)) == [Retire(third, "scale-down")]
    assert h.run(h.sup.exited(third, 0, None, h.now)) == []
    assert h.sup.target == 2


class RecycleMachine(RuleBasedStateMachine):
    """Whatever happens, never fewer serving workers than the target, once started."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(Supervisor(3, max_concurrent=1))
        self.h.start_all_ready()
        self.retire_pending: list[int] = []

    @rule(data=st.data())
    def recycle_one(self, data: st.DataObject) -> None:
        serving = sorted(w.pid for w in self.h.sup.serving())
        pid = data.draw(st.sampled_from(serving))
        self._absorb(self.h.run(self.h.sup.recycle(pid, "max-requests", self.h.now)))

    @precondition(lambda self: any(not w.ready for w in self.h.sup.workers.values()))
    @rule()
    def a_replacement_becomes_ready(self) -> None:
        pid = min(p for p, w in self.h.sup.workers.items() if not w.ready)
        self._absorb(self.h.run(self.h.sup.ready(pid, self.h.now)))

    @precondition(lambda self: bool(self.retire_pending))
    @rule()
    def a_retired_worker_exits(self) -> None:
        pid = self.retire_pending.pop(0)
        self._absorb(self.h.run(self.h.sup.exited(pid, 0, None, self.h.now)))

    @rule()
    def reload(self) -> None:
        self._absorb(self.h.run(self.h.sup.reload(self.h.now)))

    def _absorb(self, actions: list[object]) -> None:
        self.retire_pending += [a.pid for a in actions if isinstance(a, Retire)]

    @invariant()
    def capacity_never_drops(self) -> None:
        ready = [w for w in self.h.sup.workers.values() if w.ready]
        assert len(ready) >= 3  # a retiring worker still counts until it is drained

    @invariant()
    def at_most_one_replacement_under_way(self) -> None:
        assert self.h.sup.in_progress() <= 1


RecycleMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestRecycleMachine = RecycleMachine.TestCase


@given(st.integers(1, 10_000), st.integers(0, 5_000))
def test_jitter_bounds(n: int, jitter: int) -> None:
    from swserve.config import Config

    config = Config(max_requests=n, max_requests_jitter=jitter)
    assert config.jitter == jitter
    assert Config(max_requests=n).jitter == n // 2


def test_scale_down_of_a_booting_worker_stops_it() -> None:
    h = Harness(Supervisor(1))
    h.start_all_ready()
    h.run(h.sup.scale(1, h.now))
    booting = max(h.sup.workers)
    assert h.run(h.sup.scale(-1, h.now)) == [Kill(booting, signal.SIGTERM, "scale-down")]


def test_reload_catches_a_replacement_that_was_booting_with_old_code() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    old = h.pid_of(1)
    h.run(h.sup.recycle(old, "max-requests", h.now))  # replacement spawned: generation 1
    booting = max(h.sup.workers)
    h.run(h.sup.reload(h.now))  # code changes now; the booting one may have the old code
    h.run(h.sup.ready(booting, h.now))
    assert any(p == booting for p, _ in h.sup.queue) or any(
        w.replaces == booting for w in h.sup.workers.values()
    ), "the replacement that booted before the reload is not replaced by it"
