"""The task queue and dispatch to idle task workers, sans-IO.

One :class:`Broker` lives in the master (``tasks/server.py`` is its shell).
Callers (workers, user processes, task workers themselves) submit tasks; the
broker hands each one to an *idle* task worker (one task at a time per task
worker: Swoole's dispatch to idle), or queues it, up to ``queue_size``; past
that the caller is answered QUEUE_FULL at once.  Every event returns the
actions the shell carries out; the clock is passed in.

Theory of operation
-------------------
A task has two ids: the caller's own (unique on that caller's link) and the
broker's (``gid``, unique in the server), which is what a task worker sees::

    submit ──► queue ──► Run(worker) ──► result ──► Answer(caller)
                 │            │
                 │            ├── past --task-timeout: Answer TIMEOUT, TimedOut(pid):
                 │            │   the manager kills and replaces that task worker
                 │            └── the task worker dies: Answer LOST
                 └── full: Answer QUEUE_FULL (a fire-and-forget task is dropped and counted)

A caller that has gone (or cancelled) is not answered: its task still runs
(or, cancelled while queued, is dropped) and the result is discarded.  A task
worker asked to retire (recycle, reload) takes no new task and gets Stop once
its current one is answered.  After ``limit`` tasks a task worker asks to be
recycled (``--task-max-requests`` plus jitter, decided when it is ready).
"""

from __future__ import annotations

import collections
from bisect import bisect_left
from dataclasses import dataclass, field

from swserve.metrics.exposition import TASK_DURATION_BUCKETS as DURATION_BUCKETS
from swserve.tasks import codec

# -- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    worker: int  # link key
    gid: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    caller: int  # link key
    task: int  # the caller's own id
    outcome: int  # codec.OK … codec.LOST
    payload: bytes


@dataclass(frozen=True, slots=True)
class Stop:
    worker: int


@dataclass(frozen=True, slots=True)
class Recycle:
    pid: int
    reason: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    pid: int
    name: str  # the task's callable, for the log line
    seconds: float


@dataclass(frozen=True, slots=True)
class Dropped:
    """A result (or a fire-and-forget task) nobody waits for: logged at debug."""

    name: str
    why: str


Action = Run | Answer | Stop | Recycle | TimedOut | Dropped


# -- state ------------------------------------------------------------------------------


@dataclass(slots=True)
class Task:
    gid: int
    caller: int
    local: int
    payload: bytes
    nowait: bool
    worker: int = 0  # link key, once running
    started: float = 0.0
    cancelled: bool = False  # the caller stopped waiting


@dataclass(slots=True)
class TaskWorker:
    key: int
    slot: int
    pid: int
    limit: int  # tasks before it asks to be recycled (0: never)
    done: int = 0
    current: int = 0  # gid of its task, 0 when idle
    retiring: bool = False
    recycle_asked: bool = False


@dataclass(slots=True)
class Counters:
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    rejected: int = 0  # QUEUE_FULL answers and dropped fire-and-forget tasks
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_us: int = 0


class Broker:
    def __init__(self, queue_size: int, timeout: float = 0.0) -> None:
        self.queue_size = queue_size
        self.timeout = timeout
        self.workers: dict[int, TaskWorker] = {}  # link key → task worker
        self.idle: collections.deque[int] = collections.deque()  # link keys, longest idle first
        self.queue: collections.deque[Task] = collections.deque()
        self.running: dict[int, Task] = {}  # gid → task
        self.by_caller: dict[tuple[int, int], Task] = {}  # (caller, local id) → queued or running
        self.counters = Counters()
        self._gids = 0

    # -- queries --------------------------------------------------------------------------

    def busy(self) -> bool:
        """Is any task queued or running?"""
        return bool(self.queue or self.running)

    def alive(self) -> int:
        """Task workers that take tasks (for /metrics)."""
        return sum(1 for w in self.workers.values() if not w.retiring)

    # -- events ---------------------------------------------------------------------------

    def worker_ready(self, key: int, slot: int, pid: int, limit: int) -> list[Action]:
        self.workers[key] = TaskWorker(key, slot, pid, limit)
        self.idle.append(key)
        return self._dispatch(0.0)

    def submit(
        self, caller: int, local: int, payload: bytes, nowait: bool, now: float
    ) -> list[Action]:
        if len(self.queue) >= self.queue_size:  # (a queue forms only when none is idle)
            self.counters.rejected += 1
            name = codec.task_name(payload)
            if nowait:
                return [Dropped(name, "the task queue is full")]
            message = f"the task queue is full ({self.queue_size} tasks wait): {name} not run"
            return [Answer(caller, local, codec.QUEUE_FULL, message.encode())]
        self._gids += 1
        task = Task(self._gids, caller, local, payload, nowait)
        if not nowait:
            self.by_caller[caller, local] = task
        self.queue.append(task)
        return self._dispatch(now)

    def result(self, key: int, gid: int, outcome: int, payload: bytes, now: float) -> list[Action]:
        worker = self.workers.get(key)
        task = self.running.get(gid)
        if worker is None or task is None or task.worker != key:
            return []  # a task already answered (timed out) or not this worker's
        del self.running[gid]
        worker.current = 0
        worker.done += 1
        self._observe(codec.OUTCOMES.get(outcome, "raised"), now - task.started)
        actions = self._answer(task, outcome, payload)
        actions += self._free(worker)
        return actions + self._dispatch(now)

    def cancel(self, caller: int, local: int) -> list[Action]:
        """The caller stopped waiting: a queued task is dropped, a running one's result will be."""
        task = self.by_caller.pop((caller, local), None)
        if task is None:
            return []
        task.cancelled = True
        if not task.worker:
            self.queue.remove(task)
            return [Dropped(codec.task_name(task.payload), "its caller stopped waiting")]
        return []

    def caller_lost(self, caller: int) -> None:
        """A caller's link closed: its tasks run on, and their results are dropped."""
        for pair in [p for p in self.by_caller if p[0] == caller]:
            self.by_caller.pop(pair).cancelled = True

    def worker_lost(self, key: int, now: float) -> list[Action]:
        worker = self.workers.pop(key, None)
        if worker is None:
            return []
        try:
            self.idle.remove(key)
        except ValueError:
            pass
        task = self.running.pop(worker.current, None) if worker.current else None
        if task is None:
            return []
        self._observe("lost", now - task.started)
        message = (
            f"task worker {worker.slot} (pid {worker.pid}) died while it ran "
            f"{codec.task_name(task.payload)}"
        )
        return self._answer(task, codec.LOST, message.encode())

    def retire(self, pid: int) -> list[Action]:
        for worker in self.workers.values():
            if worker.pid == pid and not worker.retiring:
                worker.retiring = True
                if not worker.current:
                    self.idle.remove(worker.key)
                    return [Stop(worker.key)]
        return []

    def tick(self, now: float) -> list[Action]:
        """Tasks past --task-timeout: answer TIMEOUT and have their task worker replaced."""
        if not self.timeout:
            return []
        actions: list[Action] = []
        for task in [t for t in self.running.values() if now - t.started >= self.timeout]:
            del self.running[task.gid]
            worker = self.workers[task.worker]
            worker.retiring = True  # killed and replaced: it gets no other task
            self._observe("timeout", now - task.started)
            name = codec.task_name(task.payload)
            message = f"{name} ran past --task-timeout {self.timeout:g}s"
            actions += self._answer(task, codec.TIMEOUT, message.encode())
            actions.append(TimedOut(worker.pid, name, self.timeout))
        return actions

    # -- helpers --------------------------------------------------------------------------

    def _dispatch(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self.queue and self.idle:
            task = self.queue.popleft()
            worker = self.workers[self.idle.popleft()]
            worker.current = task.gid
            task.worker = worker.key
            task.started = now
            self.running[task.gid] = task
            actions.append(Run(worker.key, task.gid, task.payload))
        return actions

    def _free(self, worker: TaskWorker) -> list[Action]:
        if worker.retiring:
            return [Stop(worker.key)]
        self.idle.append(worker.key)
        if worker.limit and worker.done >= worker.limit and not worker.recycle_asked:
            worker.recycle_asked = True  # it serves on until its replacement is ready
            return [Recycle(worker.pid, "max-requests")]
        return []

    def _answer(self, task: Task, outcome: int, payload: bytes) -> list[Action]:
        if task.nowait:
            if outcome == codec.OK:
                return []
            return [Dropped(codec.task_name(task.payload), f"{codec.OUTCOMES[outcome]}, unawaited")]
        if task.cancelled:
            return [Dropped(codec.task_name(task.payload), "its caller stopped waiting")]
        del self.by_caller[task.caller, task.local]
        return [Answer(task.caller, task.local, outcome, payload)]

    def _observe(self, outcome: str, seconds: float) -> None:
        counters = self.counters
        counters.outcomes[outcome] += 1
        counters.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        counters.duration_us += int(max(0.0, seconds) * 1_000_000)
