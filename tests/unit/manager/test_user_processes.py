"""User processes, sans-IO: start after the workers, back-off, the crash-loop rule, reload."""

from __future__ import annotations

import signal
from collections.abc import Sequence

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swserve.errors import EXIT_APP_LOAD
from swserve.ipc.control import Reason
from swserve.manager.other_kinds import relabel
from swserve.manager.policy import Halt, Kill, Log, Spawn
from swserve.manager.user_processes import BACKOFF_MAX, CRASH_LOOP, STABLE, UserProcesses


def started(*specs: str) -> UserProcesses:
    procs = UserProcesses(specs or ("m:run",), kill_grace=5.0)
    assert procs.start() == [Spawn(i + 1, Reason.START) for i in range(len(procs.procs))]
    assert procs.start() == []  # once
    for i in range(len(procs.procs)):
        procs.spawned(i + 1, 100 + i, 0.0)
    return procs


def test_an_exit_restarts_after_a_doubling_back_off_then_the_crash_loop_halts() -> None:
    procs = started()
    now = 0.0
    delays = []
    pid = 100
    for n in range(1, CRASH_LOOP):
        actions = procs.exited(pid, 1, None, now + 0.05)
        assert len(actions) == 1
        assert isinstance(actions[0], Log)
        assert f"user process 1 (m:run, pid {pid}) exited with code 1; restarting in" in (
            actions[0].message
        )
        delay = procs.procs[0].restart_at - (now + 0.05)  # type: ignore[operator]
        delays.append(round(delay, 3))
        assert procs.tick(now + 0.05 + delay / 2) == []  # not before the back-off
        assert procs.next_due() == procs.procs[0].restart_at  # the manager wakes for it
        now = now + 0.05 + delay
        assert procs.tick(now) == [Spawn(1, Reason.RESTART)]
        assert procs.next_due() is None
        pid += 1
        procs.spawned(1, pid, now)
        assert procs.procs[0].restarts == n
    assert delays == [0.1, 0.2, 0.4, 0.8]
    halt = procs.exited(pid, None, signal.SIGSEGV, now + 0.05)
    assert len(halt) == 1
    assert isinstance(halt[0], Halt)
    assert halt[0].code == EXIT_APP_LOAD
    assert "was killed by SIGSEGV" in halt[0].message
    assert f"exited {CRASH_LOOP} times in a row" in halt[0].message


def test_a_stable_run_resets_the_back_off() -> None:
    procs = started()
    now = 0.0
    for _ in range(CRASH_LOOP * 3):  # never a halt: each run lasted STABLE seconds
        now += STABLE
        actions = procs.exited(procs.procs[0].pid, 0, None, now)
        assert "restarting in 0.1s" in actions[0].message  # type: ignore[union-attr]
        now += 0.1
        assert procs.tick(now) == [Spawn(1, Reason.RESTART)]
        procs.spawned(1, int(now), now)


def test_a_process_that_once_ran_stable_is_restarted_forever_never_halting() -> None:
    """As workers once the server has served (#17): a consumer whose broker went away."""
    procs = started()
    now = STABLE  # its first run was stable
    assert procs.tick(now) == []
    assert procs.procs[0].proven
    for _ in range(CRASH_LOOP * 3):
        actions = procs.exited(procs.procs[0].pid, 1, None, now + 0.01)
        assert not any(isinstance(a, Halt) for a in actions)
        due = procs.next_due()
        assert due is not None
        assert due - (now + 0.01) <= BACKOFF_MAX
        now = due
        assert procs.tick(now) == [Spawn(1, Reason.RESTART)]
        procs.spawned(1, int(now * 1000), now)


def test_a_failed_fork_is_retried_later() -> None:
    procs = started()
    procs.exited(100, 1, None, 0.05)
    assert procs.tick(1.0) == [Spawn(1, Reason.RESTART)]
    (log,) = procs.fork_failed(1, "Resource temporarily unavailable", 1.0)
    assert isinstance(log, Log)
    assert "cannot fork user process 1" in log.message
    assert procs.tick(1.5) == []
    assert procs.tick(2.0) == [Spawn(1, Reason.RESTART)]


@given(st.integers(1, 40))
def test_the_back_off_is_capped(failures: int) -> None:
    procs = started()
    proc = procs.procs[0]
    proc.failures = failures
    procs.exited(proc.pid, 1, None, 1.0)
    if proc.restart_at is not None:
        assert 0.1 <= proc.restart_at - 1.0 <= BACKOFF_MAX


def test_reload_stops_each_and_starts_it_again_at_once() -> None:
    procs = started("a:one", "b:two")
    assert procs.reload(3.0) == [
        Kill(100, signal.SIGTERM, Reason.RELOAD),
        Kill(101, signal.SIGTERM, Reason.RELOAD),
    ]
    assert procs.reload(3.5) == []  # already on its way
    assert procs.exited(100, 0, None, 4.0) == [Spawn(1, Reason.RELOAD)]  # no back-off, no count
    procs.spawned(1, 200, 4.0)
    assert procs.procs[0].failures == 0
    assert procs.tick(7.9) == []
    assert procs.tick(8.0) == [Kill(101, signal.SIGKILL, Reason.RELOAD)]  # past the grace
    assert procs.tick(9.0) == []


def test_a_reload_during_a_back_off_starts_the_new_code_now() -> None:
    procs = started()
    procs.exited(100, 1, None, 1.0)
    assert procs.reload(1.01) == []
    assert procs.tick(1.01) == [Spawn(1, Reason.RESTART)]


def test_nothing_restarts_once_stopping() -> None:
    procs = started()
    procs.stop()
    assert procs.exited(100, 1, None, 1.0) == []
    assert procs.tick(100.0) == []
    assert procs.reload(100.0) == []


def test_task_supervisor_lines_name_task_workers() -> None:
    assert relabel(Log("warning", "worker 2 (pid 9) exited with code 1")) == Log(
        "warning", "task worker 2 (pid 9) exited with code 1"
    )
    assert relabel(Log("info", "reloading 2 worker(s) (async)")) == Log(
        "info", "reloading 2 task worker(s) (async)"
    )
    assert relabel(Halt(3, "worker 1 failed to boot: x")) == Halt(
        3, "task worker 1 failed to boot: x"
    )
    assert relabel(Spawn(1)) == Spawn(1)


class UserProcessMachine(RuleBasedStateMachine):
    """Whatever happens: one copy of each process at most; restarts only after the back-off;
    a halt only after CRASH_LOOP short runs in a row."""

    def __init__(self) -> None:
        super().__init__()
        self.procs = started("a:one", "b:two")
        self.now = 0.0
        self.next_pid = 1000
        self.halted = False
        self.short_runs = [0, 0]

    def _absorb(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                proc = self.procs.procs[action.slot - 1]
                assert not proc.pid, "a second copy of a user process"
                if action.reason == "restart":
                    assert proc.restart_at is None  # tick cleared it: it was due
                self.next_pid += 1
                self.procs.spawned(action.slot, self.next_pid, self.now)
            elif isinstance(action, Halt):
                assert max(self.short_runs) >= CRASH_LOOP
                self.halted = True

    @precondition(lambda self: not self.halted and bool(self.procs.pids()))
    @rule(data=st.data(), ran=st.sampled_from([0.01, 0.5, 3.0, STABLE, 2 * STABLE]))
    def one_exits(self, data: st.DataObject, ran: float) -> None:
        pid = data.draw(st.sampled_from(sorted(self.procs.pids())))
        proc = self.procs.by_pid(pid)
        assert proc is not None
        self.now += ran
        replacing = proc.replacing
        if not replacing:
            quick = self.now - proc.started_at < STABLE
            self.short_runs[proc.index - 1] = self.short_runs[proc.index - 1] + 1 if quick else 1
        self._absorb(self.procs.exited(pid, 1, None, self.now))

    @rule(seconds=st.floats(0.0, 3.0))
    def time_passes(self, seconds: float) -> None:  # always applicable: a run never stalls
        if self.halted:
            return
        self.now += seconds
        due = {
            p.index
            for p in self.procs.procs
            if p.restart_at is not None and p.restart_at <= self.now
        }
        actions = self.procs.tick(self.now)
        assert {a.slot for a in actions if isinstance(a, Spawn)} == due - {
            p.index for p in self.procs.procs if p.pid
        }
        self._absorb(actions)

    @precondition(lambda self: not self.halted)
    @rule()
    def reload(self) -> None:
        self._absorb(self.procs.reload(self.now))
        for proc in self.procs.procs:
            if proc.replacing:
                self.short_runs[proc.index - 1] = 0

    @invariant()
    def each_is_running_or_due_or_replacing(self) -> None:
        if self.halted:
            return
        for proc in self.procs.procs:
            assert bool(proc.pid) != (proc.restart_at is not None) or proc.replacing


UserProcessMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestUserProcessMachine = UserProcessMachine.TestCase
