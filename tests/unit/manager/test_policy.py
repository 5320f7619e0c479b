"""The supervisor's decisions, with a fake clock and fake pids: no processes."""

from __future__ import annotations

import itertools
import math
import random
import signal
from collections.abc import Sequence

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swserve.errors import EXIT_APP_LOAD
from swserve.ipc.control import Reason
from swserve.manager.backoff import CAP, Backoff
from swserve.manager.policy import (
    BackingOff,
    Exit,
    Halt,
    Kill,
    Log,
    Reloaded,
    Retire,
    Spawn,
    Supervisor,
    Watch,
    describe,
    steps_to,
)


class Harness:
    """Plays the manager shell: turns Spawn actions into pids, records the rest."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.pids = itertools.count(100)
        self.now = 0.0
        self.log: list[object] = []
        self.fork_ok = True  # False: every fork fails (EAGAIN), as with RLIMIT_NPROC reached

    def run(self, actions: Sequence[object]) -> list[object]:
        out = []
        for action in actions:
            self.log.append(action)
            out.append(action)
            if isinstance(action, Spawn):
                if self.fork_ok:
                    out += self.run(self.sup.spawned(action.slot, next(self.pids), self.now))
                else:
                    out += self.run(self.sup.fork_failed(action.slot, "EAGAIN", self.now))
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
    actions = h.run(h.sup.recycle(old, Reason.MAX_REQUESTS, h.now))
    assert actions == [Spawn(1, Reason.MAX_REQUESTS)]
    assert not any(isinstance(a, Retire) for a in actions)  # old still serves
    new = max(h.sup.workers)
    assert h.run(h.sup.ready(new, h.now)) == [Retire(old, Reason.MAX_REQUESTS)]
    assert h.run(h.sup.exited(old, 0, None, h.now)) == []  # expected: no respawn
    assert sorted(w.slot for w in h.sup.workers.values()) == [1, 2]


def test_one_recycle_at_a_time() -> None:
    h = Harness(Supervisor(3, max_concurrent=1))
    h.start_all_ready()
    pids = [h.pid_of(s) for s in (1, 2, 3)]
    first = h.run(h.sup.recycle(pids[0], Reason.MAX_REQUESTS, h.now))
    second = h.run(h.sup.recycle(pids[1], Reason.MAX_REQUESTS, h.now))
    assert len([a for a in first if isinstance(a, Spawn)]) == 1
    assert second == []  # queued behind the first
    new = max(h.sup.workers)
    h.run(h.sup.ready(new, h.now))
    assert h.run(h.sup.exited(pids[0], 0, None, h.now)) == [Spawn(2, Reason.MAX_REQUESTS)]


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
    assert h.sup.generation == 2  # one reload, not two


def test_sync_reload_retires_first() -> None:
    h = Harness(Supervisor(2, reload_mode="sync"))
    h.start_all_ready()
    old = h.pid_of(1)
    actions = h.run(h.sup.reload(h.now))
    assert Retire(old, Reason.RELOAD_SYNC) in actions
    assert not any(isinstance(a, Spawn) for a in actions)
    assert h.run(h.sup.exited(old, 0, None, h.now))[0] == Spawn(1, Reason.RELOAD_SYNC)


def test_sync_reload_takes_the_next_step_once_the_replacement_is_ready() -> None:
    """One worker at a time: capacity drops by one at most, and the reload is
    finished only when the last replacement is ready (not when it is forked)."""
    h = Harness(Supervisor(2, reload_mode="sync"))
    h.start_all_ready()
    first, second = h.pid_of(1), h.pid_of(2)
    h.run(h.sup.reload(h.now))
    actions = h.run(h.sup.exited(first, 0, None, h.now))
    assert actions == [Spawn(1, Reason.RELOAD_SYNC)]  # slot 2 still serves meanwhile
    new_first = h.pid_of(1)
    actions = h.run(h.sup.ready(new_first, h.now))
    assert actions == [Retire(second, Reason.RELOAD_SYNC)]
    actions = h.run(h.sup.exited(second, 0, None, h.now))
    assert actions == [Spawn(2, Reason.RELOAD_SYNC)]  # not finished: slot 2 is booting
    actions = h.run(h.sup.ready(h.pid_of(2), h.now))
    assert actions == [Reloaded()]


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


def test_a_boot_failure_during_start_up_halts() -> None:
    h = Harness(Supervisor(2))
    h.run(h.sup.start())
    first = min(h.sup.workers)
    h.run(h.sup.ready(first, h.now))  # one is ready, the other never is
    (action,) = h.run(h.sup.exited(max(h.sup.workers), EXIT_APP_LOAD, None, h.now))
    assert isinstance(action, Halt)
    assert action.code == EXIT_APP_LOAD


def test_a_crash_loop_after_start_up_backs_off_and_never_halts() -> None:
    """Respawns at once, then after 0.5, 1, 2, … s up to the cap; one log line per step."""
    h = Harness(Supervisor(2))
    h.start_all_ready()
    healthy = h.pid_of(2)
    actions = h.run(h.sup.exited(h.pid_of(1), None, signal.SIGSEGV, h.now))
    assert Spawn(1, Reason.CRASH) in actions
    assert any(isinstance(a, Log) and "SIGSEGV" in a.message for a in actions)
    delays = []
    for _ in range(12):
        (pid,) = [p for p, w in h.sup.workers.items() if w.slot == 1]
        actions = h.run(h.sup.exited(pid, EXIT_APP_LOAD, None, h.now))
        assert not any(isinstance(a, Halt) for a in actions)
        assert len([a for a in actions if isinstance(a, Log)]) == 1  # once per step
        if Spawn(1, Reason.CRASH) in actions:  # the first failure: at once
            delays.append(0.0)
            continue
        (step,) = [a for a in actions if isinstance(a, BackingOff)]
        delays.append(step.delay)
        assert h.sup.wake_at() == h.now + step.delay
        h.now += step.delay - 0.01
        assert h.run(h.sup.tick(h.now)) == []  # not yet
        h.now += 0.01
        assert h.run(h.sup.tick(h.now)) == [Spawn(1, Reason.CRASH)]
    assert delays[:8] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, CAP]
    assert delays[8:] == [CAP] * 4
    assert h.sup.workers[healthy].ready  # the healthy worker serves throughout
    # it boots at last: the back-off is over and said so
    (pid,) = [p for p, w in h.sup.workers.items() if w.slot == 1]
    actions = h.run(h.sup.ready(pid, h.now))
    assert BackingOff(1, 0, 0.0) in actions
    assert h.sup.backoff.failures == {}


def test_sighup_resets_the_back_off_and_tries_the_new_code_now() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    h.run(h.sup.exited(h.pid_of(1), None, signal.SIGKILL, h.now))
    for _ in range(3):  # at once, then 0.5 s, then 1 s
        (pid,) = [p for p, w in h.sup.workers.items() if w.slot == 1]
        h.run(h.sup.exited(pid, EXIT_APP_LOAD, None, h.now))
        h.now += 5
        h.run(h.sup.tick(h.now))
    (pid,) = [p for p, w in h.sup.workers.items() if w.slot == 1]
    h.run(h.sup.exited(pid, EXIT_APP_LOAD, None, h.now))  # now waiting 2 s
    assert h.sup.by_slot(1) == []
    actions = h.run(h.sup.reload(h.now))
    assert Spawn(1, Reason.CRASH) in actions
    assert BackingOff(1, 0, 0.0) in actions
    assert h.sup.wake_at() is None
    (fresh,) = [p for p, w in h.sup.workers.items() if w.slot == 1]
    assert not h.sup.workers[fresh].ready
    # the reload is finished only once slot 2 is replaced and slot 1 serves the new code
    assert not any(isinstance(a, Reloaded) for a in h.log)
    h.run(h.sup.ready(fresh, h.now))
    replacement = max(p for p, w in h.sup.workers.items() if w.slot == 2)
    actions = h.run(h.sup.ready(replacement, h.now))
    (retire,) = [a for a in actions if isinstance(a, Retire)]
    actions = h.run(h.sup.exited(retire.pid, 0, None, h.now))
    assert actions == [Reloaded()]


def test_a_reload_during_start_up_waits_for_the_booting_workers() -> None:
    """SIGHUP before every worker is ready: "reload finished" only once they are replaced."""
    h = Harness(Supervisor(2))
    h.run(h.sup.start())
    booting = sorted(h.sup.workers)
    actions = h.run(h.sup.reload(h.now))
    assert not any(isinstance(a, Reloaded) for a in actions)
    for pid in booting:
        assert not any(isinstance(a, Reloaded) for a in h.run(h.sup.ready(pid, h.now)))
    seen = False
    for _ in range(10):  # replacements boot, old ones retire and exit, one at a time
        fresh = [p for p, w in h.sup.workers.items() if not w.ready]
        for pid in fresh:
            seen |= any(isinstance(a, Reloaded) for a in h.run(h.sup.ready(pid, h.now)))
        for action in list(h.log):
            if isinstance(action, Retire) and action.pid in h.sup.workers:
                assert not seen
                seen |= any(
                    isinstance(a, Reloaded) for a in h.run(h.sup.exited(action.pid, 0, None, h.now))
                )
    assert seen
    assert all(w.generation == h.sup.generation for w in h.sup.workers.values())


def test_a_fork_that_fails_at_start_up_is_retried_after_a_back_off() -> None:
    h = Harness(Supervisor(2))
    h.fork_ok = False
    actions = h.run(h.sup.start())
    assert not any(isinstance(a, Halt) for a in actions)
    assert [a.delay for a in actions if isinstance(a, BackingOff)] == [0.5, 0.5]
    assert h.sup.workers == {}
    h.fork_ok = True
    h.now = 0.5
    assert h.run(h.sup.tick(h.now)) == [Spawn(1, Reason.START), Spawn(2, Reason.START)]
    for pid in list(h.sup.workers):
        h.run(h.sup.ready(pid, h.now))
    assert h.sup.started


def test_a_replacement_whose_fork_fails_is_retried_as_a_replacement() -> None:
    h = Harness(Supervisor(1))
    h.start_all_ready()
    old = h.pid_of(1)
    h.fork_ok = False
    actions = h.run(h.sup.reload(h.now))
    assert any(isinstance(a, Log) and "cannot fork worker 1" in a.message for a in actions)
    assert not any(isinstance(a, Reloaded) for a in actions)  # the old code still serves
    h.fork_ok = True
    h.now = 1.0
    assert h.run(h.sup.tick(h.now)) == [Spawn(1, Reason.RELOAD)]
    new = max(h.sup.workers)
    assert Retire(old, Reason.RELOAD) in h.run(h.sup.ready(new, h.now))
    assert h.run(h.sup.exited(old, 0, None, h.now)) == [Reloaded()]


def test_backoff_rule_is_reusable_per_kind() -> None:
    rule = Backoff(first=1.0, cap=5.0)
    steps = [rule.failed("cron", 0.0).delay for _ in range(6)]
    assert steps == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert rule.due(4.9) == []
    assert rule.due(5.0) == ["cron"]
    assert rule.succeeded("cron") == 6
    assert rule.failures == {}


def test_retiring_worker_is_killed_after_max_wait() -> None:
    h = Harness(Supervisor(1, max_wait=30))
    h.start_all_ready()
    old = h.pid_of(1)
    h.run(h.sup.recycle(old, Reason.MAX_REQUESTS, h.now))
    h.run(h.sup.ready(max(h.sup.workers), h.now))
    h.now = 29.9
    assert h.run(h.sup.tick(h.now)) == []
    h.now = 30.0
    assert Kill(old, signal.SIGKILL, Reason.MAX_REQUESTS) in h.run(h.sup.tick(h.now))


def test_timeout_replaces_now_and_escalates() -> None:
    h = Harness(Supervisor(1, kill_grace=5))
    h.start_all_ready()
    old = h.pid_of(1)
    actions = h.run(h.sup.timed_out(old, h.now))
    assert actions == [Kill(old, signal.SIGTERM, Reason.TIMEOUT), Spawn(1, Reason.TIMEOUT)]
    h.now = 5
    assert h.run(h.sup.tick(h.now)) == [Kill(old, signal.SIGKILL, Reason.TIMEOUT)]
    assert h.run(h.sup.exited(old, None, signal.SIGKILL, h.now)) == []  # replacement exists


def test_scale_up_and_down() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    assert h.run(h.sup.scale(1, h.now)) == [Spawn(3, Reason.SCALE_UP)]
    third = max(h.sup.workers)
    h.run(h.sup.ready(third, h.now))
    assert h.run(h.sup.scale(-1, h.now)) == [Retire(third, Reason.SCALE_DOWN)]
    assert h.run(h.sup.exited(third, 0, None, h.now)) == []
    assert h.sup.target == 2


class SupervisorMachine(RuleBasedStateMachine):
    """What every machine below shares: a harness, and the workers it retired that exit."""

    h: Harness
    retire_pending: list[int]

    def _absorb(self, actions: list[object]) -> None:
        raise NotImplementedError

    @invariant()
    def every_slot_is_covered(self) -> None:
        sup = self.h.sup
        pending = {slot for slot, _, _ in sup.pending_spawns}
        for slot in range(1, sup.target + 1):
            covered = sup.by_slot(slot) or slot in pending or slot in sup.backoff.waiting
            assert covered, f"slot {slot} is forgotten"

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


class RecycleMachine(SupervisorMachine):
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
        self._absorb(self.h.run(self.h.sup.recycle(pid, Reason.MAX_REQUESTS, self.h.now)))

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
    assert h.run(h.sup.scale(-1, h.now)) == [Kill(booting, signal.SIGTERM, Reason.SCALE_DOWN)]


def test_reload_catches_a_replacement_that_was_booting_with_old_code() -> None:
    h = Harness(Supervisor(2))
    h.start_all_ready()
    old = h.pid_of(1)
    h.run(h.sup.recycle(old, Reason.MAX_REQUESTS, h.now))  # replacement spawned: generation 1
    booting = max(h.sup.workers)
    h.run(h.sup.reload(h.now))  # code changes now; the booting one may have the old code
    h.run(h.sup.ready(booting, h.now))
    assert any(p == booting for p, _ in h.sup.queue) or any(
        w.replaces == booting for w in h.sup.workers.values()
    ), "the replacement that booted before the reload is not replaced by it"


@pytest.mark.parametrize(
    ("current", "target", "steps"),
    [(2, 4, [1, 1]), (4, 2, [-1, -1]), (3, 3, []), (2, 0, [-1])],
)
def test_steps_to_a_worker_count(current: int, target: int, steps: list[int]) -> None:
    """`swserve ctl scale N` is carried out as SIGTTIN/SIGTTOU steps, never below one worker."""
    assert steps_to(current, target) == steps


class CrashLoopMachine(RuleBasedStateMachine):
    """Crashes, boot failures, the clock, reloads and scaling, in any order, after start-up.

    Never a halt; every slot is served, booting, about to be spawned or waiting
    out a back-off no longer than the cap; "reload finished" never while a
    worker from before the reload still serves or boots.
    """

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(Supervisor(3, max_concurrent=1))
        self.h.start_all_ready()
        self.retire_pending: list[int] = []

    def _absorb(self, actions: list[object]) -> None:
        for action in actions:
            assert not isinstance(action, Halt), action
            if isinstance(action, Retire):
                self.retire_pending.append(action.pid)
            if isinstance(action, BackingOff):
                assert 0 <= action.delay <= CAP
            if isinstance(action, Reloaded):
                sup = self.h.sup
                assert not any(
                    w.generation < sup.generation and not w.retiring for w in sup.workers.values()
                )

    @rule(data=st.data())
    def a_serving_worker_crashes(self, data: st.DataObject) -> None:
        serving = sorted(w.pid for w in self.h.sup.serving())
        if serving:
            pid = data.draw(st.sampled_from(serving))
            self._absorb(self.h.run(self.h.sup.exited(pid, None, signal.SIGKILL, self.h.now)))

    @precondition(lambda self: any(not w.ready for w in self.h.sup.workers.values()))
    @rule(data=st.data(), ok=st.booleans())
    def a_booting_worker_boots_or_fails(self, data: st.DataObject, ok: bool) -> None:
        booting = sorted(p for p, w in self.h.sup.workers.items() if not w.ready)
        pid = data.draw(st.sampled_from(booting))
        if ok:
            self._absorb(self.h.run(self.h.sup.ready(pid, self.h.now)))
        else:
            self.retire_pending = [p for p in self.retire_pending if p != pid]
            self._absorb(self.h.run(self.h.sup.exited(pid, EXIT_APP_LOAD, None, self.h.now)))

    @precondition(lambda self: bool(self.retire_pending))
    @rule()
    def a_retired_worker_exits(self) -> None:
        pid = self.retire_pending.pop(0)
        self._absorb(self.h.run(self.h.sup.exited(pid, 0, None, self.h.now)))

    @rule(ok=st.booleans())
    def forks_fail_or_work_again(self, ok: bool) -> None:
        self.h.fork_ok = ok

    @rule(dt=st.sampled_from([0.01, 0.5, 3.0, 40.0]))
    def time_passes(self, dt: float) -> None:
        self.h.now += dt
        self._absorb(self.h.run(self.h.sup.tick(self.h.now)))

    @rule()
    def reload(self) -> None:
        self._absorb(self.h.run(self.h.sup.reload(self.h.now)))

    @rule(data=st.data())
    def recycle_one(self, data: st.DataObject) -> None:
        serving = sorted(w.pid for w in self.h.sup.serving())
        if serving:
            pid = data.draw(st.sampled_from(serving))
            self._absorb(self.h.run(self.h.sup.recycle(pid, Reason.MAX_REQUESTS, self.h.now)))

    @invariant()
    def waits_are_capped(self) -> None:
        wake = self.h.sup.wake_at()
        assert wake is None or wake <= self.h.now + CAP

    @invariant()
    def one_live_worker_per_slot(self) -> None:
        sup = self.h.sup
        for slot in range(1, sup.target + 1):
            live = [w for w in sup.by_slot(slot) if not w.retiring and w.replaces is None]
            assert len(live) <= 1


CrashLoopMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
TestCrashLoopMachine = CrashLoopMachine.TestCase


# -- when to recycle: decided here, from observations ------------------------------------------


def test_each_worker_gets_its_own_request_limit_from_the_injected_random_source() -> None:
    def limits(seed: int) -> list[int]:
        h = Harness(Supervisor(4, max_requests=100, jitter=50, rng=random.Random(seed)))
        actions = h.run(h.sup.start())
        spawns = [a.requests for a in actions if isinstance(a, Spawn)]
        watches = [a.count for a in actions if isinstance(a, Watch)]
        assert spawns == watches  # the base-mode worker and the reactor watch the same count
        assert [w.request_limit for w in h.sup.workers.values()] == spawns
        return spawns

    assert limits(7) == limits(7)  # the random source decides, and only it
    assert all(100 <= n <= 150 for n in limits(7) + limits(8))
    assert len({tuple(limits(seed)) for seed in range(5)}) > 1


def test_no_max_requests_means_no_watch() -> None:
    h = Harness(Supervisor(2))
    actions = h.run(h.sup.start())
    assert not any(isinstance(a, Watch) for a in actions)
    assert all(a.requests == 0 for a in actions if isinstance(a, Spawn))


def test_a_served_count_recycles_only_at_the_workers_own_limit() -> None:
    h = Harness(Supervisor(2, max_requests=10, jitter=0))
    h.start_all_ready()
    pid = h.pid_of(1)
    assert h.run(h.sup.served(pid, 9, h.now)) == []
    assert h.run(h.sup.served(pid, 10, h.now)) == [
        Spawn(1, Reason.MAX_REQUESTS, 10),
        Watch(102, 10),
    ]
    assert h.run(h.sup.served(pid, 11, h.now)) == []  # asked once: its replacement is booting
    new = max(h.sup.workers)
    assert h.run(h.sup.ready(new, h.now)) == [Retire(pid, Reason.MAX_REQUESTS)]
    assert h.run(h.sup.served(999, 10**6, h.now)) == []  # a worker we do not know


def test_lifetime_recycles_after_the_limit_and_its_jitter() -> None:
    h = Harness(Supervisor(1, lifetime=100.0, rng=random.Random(3)))
    h.start_all_ready()
    (worker,) = h.sup.workers.values()
    assert 100.0 <= worker.expires_at <= 110.0
    h.now = 99.9
    assert h.run(h.sup.tick(h.now)) == []
    h.now = worker.expires_at
    assert h.run(h.sup.tick(h.now)) == [Spawn(1, Reason.LIFETIME)]
    assert worker.expires_at == math.inf  # asked once
    assert h.run(h.sup.tick(h.now + 1)) == []


def test_a_memory_sample_over_the_limit_recycles() -> None:
    h = Harness(Supervisor(1, memory=256.0))
    h.start_all_ready()
    pid = h.pid_of(1)
    assert h.run(h.sup.sampled(pid, 256.0, h.now)) == []
    assert h.run(h.sup.sampled(pid, 300.5, h.now)) == [Spawn(1, Reason.MEMORY)]
    assert Harness(Supervisor(1)).sup.sampled(pid, 10**6, 0.0) == []  # no limit set


def test_a_graceful_timeout_replaces_the_worker_replacement_first() -> None:
    """Base mode: the worker answered 504 itself and serves on; no SIGTERM cuts its clients."""
    h = Harness(Supervisor(1))
    h.start_all_ready()
    pid = h.pid_of(1)
    assert h.run(h.sup.timed_out(pid, h.now, graceful=True)) == [Spawn(1, Reason.TIMEOUT)]
    assert h.run(h.sup.ready(max(h.sup.workers), h.now)) == [Retire(pid, Reason.TIMEOUT)]


class LifecycleMachine(SupervisorMachine):
    """Served counts, memory samples, timeouts and the clock, in any order, with jitter.

    A worker is recycled for max-requests only once its observed count reached
    its own limit (N + 0…J), for memory only over the limit, for its lifetime
    only once its own (L + 0…10%) has passed, and never one of these twice;
    no slot is ever forgotten.
    """

    N, J, L, MEM = 20, 10, 50.0, 100.0

    def __init__(self) -> None:
        super().__init__()
        sup = Supervisor(
            3, max_requests=self.N, jitter=self.J, lifetime=self.L, memory=self.MEM,
            rng=random.Random(0),
        )  # fmt: skip
        self.h = Harness(sup)
        self.h.start_all_ready()
        self.retire_pending: list[int] = []  # retired or killed: the shell will see them exit
        self.counts: dict[int, int] = {}
        self.over_memory: set[int] = set()

    def _absorb(self, actions: list[object]) -> None:
        sup = self.h.sup
        for action in actions:
            if isinstance(action, Retire | Kill):
                self.retire_pending.append(action.pid)
            if isinstance(action, Spawn):
                assert self.N <= action.requests <= self.N + self.J
            if isinstance(action, Retire) and action.reason == Reason.MAX_REQUESTS:
                assert self.counts[action.pid] >= sup.workers[action.pid].request_limit
            if isinstance(action, Retire) and action.reason == Reason.MEMORY:
                assert action.pid in self.over_memory
            if isinstance(action, Retire) and action.reason == Reason.LIFETIME:
                assert self.h.now >= sup.workers[action.pid].spawned_at + self.L

    @rule(data=st.data(), n=st.integers(1, 15))
    def a_worker_serves(self, data: st.DataObject, n: int) -> None:
        serving = sorted(w.pid for w in self.h.sup.serving())
        if serving:
            pid = data.draw(st.sampled_from(serving))
            self.counts[pid] = self.counts.get(pid, 0) + n
            actions = self.h.run(self.h.sup.served(pid, self.counts[pid], self.h.now))
            if self.counts[pid] < self.h.sup.workers[pid].request_limit:
                assert actions == []
            else:
                self._asked(pid)
            self._absorb(actions)

    @rule(data=st.data(), rss=st.sampled_from([10.0, 100.0, 100.5, 5000.0]))
    def memory_is_sampled(self, data: st.DataObject, rss: float) -> None:
        serving = sorted(w.pid for w in self.h.sup.serving())
        if serving:
            pid = data.draw(st.sampled_from(serving))
            actions = self.h.run(self.h.sup.sampled(pid, rss, self.h.now))
            if rss <= self.MEM:
                assert actions == []
            else:
                self.over_memory.add(pid)
                self._asked(pid)
            self._absorb(actions)

    def _asked(self, pid: int) -> None:
        """``pid`` is on its way out: queued, being replaced, or retiring."""
        sup = self.h.sup
        assert (
            any(p == pid for p, _ in sup.queue)
            or any(w.replaces == pid for w in sup.workers.values())
            or bool(sup.workers[pid].retiring)
        )

    @rule(data=st.data(), graceful=st.booleans())
    def a_request_times_out(self, data: st.DataObject, graceful: bool) -> None:
        serving = sorted(w.pid for w in self.h.sup.serving())
        if serving:
            pid = data.draw(st.sampled_from(serving))
            self._absorb(self.h.run(self.h.sup.timed_out(pid, self.h.now, graceful)))

    @rule(dt=st.sampled_from([0.5, 5.0, 30.0]))
    def time_passes(self, dt: float) -> None:
        self.h.now += dt
        self._absorb(self.h.run(self.h.sup.tick(self.h.now)))
        for w in self.h.sup.serving():  # the tick noticed every expired worker
            assert w.expires_at > self.h.now

    @invariant()
    def limits_are_each_workers_own(self) -> None:
        for w in self.h.sup.workers.values():
            assert self.N <= w.request_limit <= self.N + self.J
            if w.expires_at != math.inf:
                assert w.spawned_at + self.L <= w.expires_at <= w.spawned_at + 1.1 * self.L


LifecycleMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=40, deadline=None
)
TestLifecycleMachine = LifecycleMachine.TestCase
