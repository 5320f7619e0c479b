"""The task broker, sans-IO: dispatch to idle, the bounded queue, loss, retire, timeouts."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swserve.tasks import codec
from swserve.tasks.broker import Answer, Broker, Dropped, Recycle, Run, Stop, TimedOut

CALLER = 100


def payload(name: str = "mod:fn") -> bytes:
    return codec.encode_task(name, (), {})


def test_dispatch_goes_to_an_idle_task_worker_and_queues_the_rest() -> None:
    b = Broker(queue_size=2)
    assert b.worker_ready(1, 1, 11, 0) == []
    assert b.worker_ready(2, 2, 12, 0) == []
    first = b.submit(CALLER, 1, payload(), False, 0.0)
    second = b.submit(CALLER, 2, payload(), False, 0.0)
    assert first == [Run(1, 1, payload())]
    assert second == [Run(2, 2, payload())]  # the other idle one, not the busy one
    assert b.submit(CALLER, 3, payload(), False, 0.0) == []  # queued
    assert b.submit(CALLER, 4, payload(), False, 0.0) == []
    full = b.submit(CALLER, 5, payload("m:f"), False, 0.0)
    assert len(full) == 1
    assert isinstance(full[0], Answer)
    assert (full[0].task, full[0].outcome) == (5, codec.QUEUE_FULL)
    assert b"m:f" in full[0].payload
    assert b.counters.rejected == 1
    # the first to finish takes the oldest queued task
    done = b.result(2, 2, codec.OK, b"v", 1.0)
    assert done == [Answer(CALLER, 2, codec.OK, b"v"), Run(2, 3, payload())]


def test_a_fire_and_forget_task_is_never_answered() -> None:
    b = Broker(queue_size=1)
    b.worker_ready(1, 1, 11, 0)
    assert b.submit(CALLER, 1, payload(), True, 0.0) == [Run(1, 1, payload())]
    b.submit(CALLER, 2, payload(), True, 0.0)
    assert b.submit(CALLER, 3, payload("m:x"), True, 0.0) == [
        Dropped("m:x", "the task queue is full")
    ]
    assert b.result(1, 1, codec.OK, b"", 1.0) == [Run(1, 2, payload())]
    assert b.result(1, 2, codec.RAISED, b"", 2.0) == [Dropped("mod:fn", "raised, unawaited")]


def test_a_dead_task_worker_answers_lost_and_its_replacement_takes_the_queue() -> None:
    b = Broker(queue_size=10)
    b.worker_ready(1, 1, 11, 0)
    b.submit(CALLER, 1, payload(), False, 0.0)
    b.submit(CALLER, 2, payload(), False, 0.0)
    lost = b.worker_lost(1, 1.0)
    assert len(lost) == 1
    assert isinstance(lost[0], Answer)
    assert (lost[0].task, lost[0].outcome) == (1, codec.LOST)
    assert b"pid 11" in lost[0].payload
    assert b.worker_ready(2, 1, 12, 0) == [Run(2, 2, payload())]
    assert b.counters.outcomes["lost"] == 1


def test_retire_stops_an_idle_worker_now_and_a_busy_one_after_its_task() -> None:
    b = Broker(queue_size=10)
    b.worker_ready(1, 1, 11, 0)
    b.worker_ready(2, 2, 12, 0)
    b.submit(CALLER, 1, payload(), False, 0.0)
    assert b.retire(12) == [Stop(2)]
    assert b.retire(11) == []  # busy
    b.submit(CALLER, 2, payload(), False, 0.0)  # nobody may take it: queued
    assert b.result(1, 1, codec.OK, b"", 1.0) == [Answer(CALLER, 1, codec.OK, b""), Stop(1)]
    assert b.worker_ready(3, 1, 13, 0) == [Run(3, 2, payload())]


def test_max_requests_asks_once_and_serves_on_until_retired() -> None:
    b = Broker(queue_size=10)
    b.worker_ready(1, 1, 11, 2)
    for n in (1, 2, 3):
        assert b.submit(CALLER, n, payload(), True, 0.0) == [Run(1, n, payload())]
        out = b.result(1, n, codec.OK, b"", 0.0)
        assert out == ([Recycle(11, "max-requests")] if n == 2 else [])


def test_timeout_answers_and_replaces_only_that_task_worker() -> None:
    b = Broker(queue_size=10, timeout=5.0)
    b.worker_ready(1, 1, 11, 0)
    b.submit(CALLER, 1, payload(), False, 0.0)
    assert b.tick(4.9) == []
    out = b.tick(5.0)
    assert out[1] == TimedOut(11, "mod:fn", 5.0)
    assert isinstance(out[0], Answer)
    assert out[0].outcome == codec.TIMEOUT
    assert b.result(1, 1, codec.OK, b"", 6.0) == []  # too late: already answered
    b.submit(CALLER, 2, payload(), False, 6.0)
    assert b.queue  # the timed-out worker takes nothing more


def test_a_cancelled_task_is_dropped_if_queued_and_unanswered_if_running() -> None:
    b = Broker(queue_size=10)
    b.worker_ready(1, 1, 11, 0)
    b.submit(CALLER, 1, payload(), False, 0.0)
    b.submit(CALLER, 2, payload(), False, 0.0)
    assert b.cancel(CALLER, 2) == [Dropped("mod:fn", "its caller stopped waiting")]
    assert not b.queue
    assert b.cancel(CALLER, 1) == []
    assert b.result(1, 1, codec.OK, b"", 1.0) == [Dropped("mod:fn", "its caller stopped waiting")]


def test_a_lost_callers_task_still_runs_and_its_result_is_dropped() -> None:
    b = Broker(queue_size=10)
    b.submit(CALLER, 1, payload(), False, 0.0)
    b.caller_lost(CALLER)
    assert b.worker_ready(1, 1, 11, 0) == [Run(1, 1, payload())]
    assert b.result(1, 1, codec.OK, b"", 1.0) == [Dropped("mod:fn", "its caller stopped waiting")]
    assert not b.by_caller


class BrokerMachine(RuleBasedStateMachine):
    """Whatever happens: one task per task worker, a bounded queue, one answer per task."""

    def __init__(self) -> None:
        super().__init__()
        self.b = Broker(queue_size=3, timeout=10.0)
        self.now = 0.0
        self.next_key = 1
        self.next_task = 1
        self.answers: collections.Counter[int] = collections.Counter()
        self.awaited: set[int] = set()
        self.cancelled: set[int] = set()
        self.running: dict[int, int] = {}  # worker key → gid, as the task workers see it
        self.stopped: set[int] = set()

    def _absorb(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, Run):
                assert action.worker not in self.running, "a busy task worker got a task"
                assert action.worker not in self.stopped
                assert not self.b.workers[action.worker].retiring
                self.running[action.worker] = action.gid
            elif isinstance(action, Answer):
                assert action.task in self.awaited
                assert action.task not in self.cancelled
                self.answers[action.task] += 1
            elif isinstance(action, Stop):
                assert action.worker not in self.running, "stopped mid-task"
                self.stopped.add(action.worker)

    @rule()
    def a_task_worker_is_ready(self) -> None:
        key, self.next_key = self.next_key, self.next_key + 1
        self._absorb(self.b.worker_ready(key, key, 1000 + key, 3))

    @rule(nowait=st.booleans())
    def submit(self, nowait: bool) -> None:
        task, self.next_task = self.next_task, self.next_task + 1
        if not nowait:
            self.awaited.add(task)
        self._absorb(self.b.submit(CALLER, task, payload(), nowait, self.now))

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data(), outcome=st.sampled_from([codec.OK, codec.RAISED]))
    def a_task_finishes(self, data: st.DataObject, outcome: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.running)))
        gid = self.running.pop(key)
        if key in self.b.workers:
            self._absorb(self.b.result(key, gid, outcome, b"", self.now))

    @precondition(lambda self: bool(self.b.workers))
    @rule(data=st.data())
    def a_task_worker_dies(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.b.workers)))
        self.running.pop(key, None)
        self._absorb(self.b.worker_lost(key, self.now))

    @precondition(lambda self: bool(self.b.workers))
    @rule(data=st.data())
    def retire(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.b.workers)))
        self._absorb(self.b.retire(self.b.workers[key].pid))

    @precondition(lambda self: bool(self.awaited))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(sorted(self.awaited)))
        if not self.answers[task]:
            self.cancelled.add(task)
        self._absorb(self.b.cancel(CALLER, task))

    @rule(seconds=st.floats(0.0, 6.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        actions = self.b.tick(self.now)
        for action in actions:
            if isinstance(action, TimedOut):  # the manager kills it: its task is gone
                key = next(k for k, w in self.b.workers.items() if w.pid == action.pid)
                self.running.pop(key, None)
        self._absorb(actions)

    @invariant()
    def bounded_queue_and_one_task_per_worker(self) -> None:
        assert len(self.b.queue) <= 3
        gids = [w.current for w in self.b.workers.values() if w.current]
        assert len(gids) == len(set(gids))
        if self.b.queue:  # a task waits only while no task worker is free
            assert not self.b.idle

    @invariant()
    def every_task_answered_at_most_once(self) -> None:
        assert all(n == 1 for n in self.answers.values())


BrokerMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestBrokerMachine = BrokerMachine.TestCase
