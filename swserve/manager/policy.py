"""Sans-IO supervision: worker events, observations and a clock in, actions out.

The manager shell feeds this module what it saw (a worker spawned, became
ready, exited; a recycle or reload was asked for; time passed) and what was
observed (a worker's served count, reported by the reactor or the base-mode
worker; its resident memory, sampled by the shell), and carries out the
actions it returns.  No I/O, no clock reads, no global random state: ``now``
is passed in and the random source is injected, so every life-cycle decision
is unit-tested with a fake clock.

When to replace a worker is decided here and nowhere else: --max-requests
(each worker's own N + rng(0…J), drawn at spawn: ``Spawn.requests`` and a
``Watch`` for the reactor; ``served()``), --max-worker-lifetime (L + rng(0…L/10)
from spawn; ``tick()``), --max-worker-memory (``sampled()``), --timeout
(``timed_out()``) and crash loops (below).

Theory of operation
-------------------
Every worker is a :class:`Worker` keyed by pid and carries a *slot* (its
1-based worker id).  A worker is replaced the async way (Swoole's
``reload_async``)::

    recycle(old) ──► Spawn(slot, replaces=old) ──► ready(new) ──► Retire(old)
                                                                   │
          exited(old) ◄── the reactor drained old and sent it STOP ┘
                      (or Kill(old) once max_wait_time has passed)

so capacity never drops below ``workers``.  At most ``max_concurrent``
replacements run at once; the rest wait in ``queue``.  A reload queues every
worker of the current generation; with ``reload_mode="sync"`` a worker is
retired first and its replacement spawned only after it exited (one at a
time, capacity drops by one).

A replacement that exits without ever being ready is a *boot failure*: the
replacement is abandoned and the old worker keeps serving (a reload with
broken code changes nothing).  During start-up a boot failure halts the
server with exit code 3 (what container users expect of gunicorn and
uvicorn).  Once the server has served, a worker that crashed and whose
respawns fail to boot is respawned with exponential back-off
(:mod:`swserve.manager.backoff`), logged once per step, while the other
workers serve on; a reload resets the back-off and tries the new code at once.
"""

from __future__ import annotations

import collections
import math
import random
import signal
from dataclasses import dataclass

from swserve.errors import EXIT_APP_LOAD
from swserve.ipc.control import Reason
from swserve.manager.backoff import Backoff

# -- actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a worker for ``slot``.  ``requests``: its own --max-requests (0: none), which a
    base-mode worker is told at fork so that it reports its count as soon as it gets there."""

    slot: int
    reason: Reason = Reason.START
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Watch:
    """Tell the reactor to report ``pid``'s count once it has served ``count`` requests."""

    pid: int
    count: int


@dataclass(frozen=True, slots=True)
class Retire:
    """Ask the reactor to stop dispatching to ``pid``, drain it and send it STOP."""

    pid: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class Kill:
    pid: int
    sig: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class Halt:
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True, slots=True)
class Reloaded:
    """Every worker of the reload's generation has been replaced."""


@dataclass(frozen=True, slots=True)
class BackingOff:
    """Slot ``slot`` has failed to boot ``failures`` times in a row; next try in ``delay`` s.

    ``failures == 0``: the slot booted (or was reset), and waits no more.  The
    shell tells the master, for /metrics and /readyz.
    """

    slot: int
    failures: int
    delay: float


Action = Spawn | Watch | Retire | Kill | Halt | Log | Reloaded | BackingOff


# -- state -----------------------------------------------------------------------------


@dataclass(slots=True)
class Worker:
    slot: int
    pid: int
    generation: int
    spawned_at: float
    ready: bool = False
    replaces: int | None = None  # pid of the worker this one replaces, once ready
    reason: Reason = Reason.START  # why it was spawned
    retiring: Reason | None = None  # the reason, once asked to retire
    retire_at: float = 0.0
    killed: bool = False
    request_limit: int = 0  # its own --max-requests, jitter included (0: none)
    expires_at: float = math.inf  # --max-worker-lifetime, jitter included


@dataclass(frozen=True, slots=True)
class Exit:
    slot: int
    pid: int
    code: int | None  # exit code, or None if killed by a signal
    signal: int | None
    expected: bool  # we retired it or signalled it on purpose


def describe(ex: Exit) -> str:
    """One log line for a worker's exit, naming the signal and guessing OOM for a stray SIGKILL."""
    who = f"worker {ex.slot} (pid {ex.pid})"
    if ex.signal is not None:
        try:
            name = signal.Signals(ex.signal).name
        except ValueError:
            name = f"signal {ex.signal}"
        line = f"{who} was killed by {name}"
        if ex.signal == signal.SIGKILL and not ex.expected:
            line += " (perhaps out of memory?)"
        return line
    return f"{who} exited with code {ex.code}"


class Supervisor:
    def __init__(
        self,
        workers: int,
        *,
        max_concurrent: int = 1,
        max_wait: float = 30.0,
        kill_grace: float = 30.0,
        reload_mode: str = "async",
        backoff: Backoff | None = None,
        max_requests: int = 0,
        jitter: int = 0,
        lifetime: float = 0.0,
        memory: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.target = workers
        self.max_concurrent = max(1, max_concurrent)
        self.max_wait = max_wait
        self.kill_grace = kill_grace
        self.reload_mode = reload_mode
        self.workers: dict[int, Worker] = {}  # pid → worker
        self.queue: collections.deque[tuple[int, Reason]] = collections.deque()  # (pid, reason)
        # spawns asked for whose pid is not known yet: (slot, replaces, reason)
        self.pending_spawns: list[tuple[int, int | None, Reason]] = []
        self.generation = 1
        self.started = False  # every first-generation worker has been ready once
        self.stopping = False
        self.reloading = False
        self.backoff = backoff or Backoff()  # slot → boot failures in a row, respawn due
        # slots whose fork failed, waiting out the back-off: slot → (replaces, reason)
        self.fork_retry: dict[int, tuple[int | None, Reason]] = {}
        # when to recycle a worker: decided here, from what the shell observes
        self.max_requests = max_requests
        self.jitter = jitter
        self.lifetime = lifetime  # seconds, up to 10% more each (0: no limit)
        self.memory = memory  # MiB of resident memory (0: no limit)
        self.rng = rng or random.Random()  # noqa: S311 - spreading recycles, not secrets
        self._limits: dict[int, int] = {}  # slot → the request limit its Spawn announced

    # -- queries ---------------------------------------------------------------------------

    def by_slot(self, slot: int) -> list[Worker]:
        return [w for w in self.workers.values() if w.slot == slot]

    def vacant(self, slot: int) -> bool:
        """No worker serves or boots for ``slot`` (one still draining does not count)."""
        if any(p[0] == slot for p in self.pending_spawns):
            return False
        return slot <= self.target and all(w.retiring for w in self.by_slot(slot))

    def serving(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.ready and not w.retiring]

    def in_progress(self) -> int:
        """Replacements under way: spawned but not ready, or retiring.

        A sync reload's replacement replaces nobody (its old worker has exited)
        but is under way until ready: the next step, and "reload finished",
        wait for it, so capacity drops by one worker at most.
        """
        under_way = sum(
            1
            for w in self.workers.values()
            if w.replaces is not None
            or w.retiring
            or (w.reason == Reason.RELOAD_SYNC and not w.ready)
        )
        return under_way + sum(
            1
            for _, replaces, reason in self.pending_spawns
            if replaces is not None or reason == Reason.RELOAD_SYNC
        )

    # -- events ------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        actions: list[Action] = []
        for slot in range(1, self.target + 1):
            actions += self._spawn(slot, None, Reason.START)
        return actions

    def spawned(self, slot: int, pid: int, now: float) -> list[Action]:
        """The shell forked ``pid`` for a Spawn of ``slot``: Watch its count if it has a limit."""
        replaces: int | None = None
        reason = Reason.START
        for i, (pending_slot, pending_replaces, pending_reason) in enumerate(self.pending_spawns):
            if pending_slot == slot:
                del self.pending_spawns[i]
                replaces, reason = pending_replaces, pending_reason
                break
        limit = self._limits.pop(slot, 0)
        expires = math.inf
        if self.lifetime:
            expires = now + self.lifetime + self.rng.uniform(0, self.lifetime / 10)
        self.workers[pid] = Worker(
            slot,
            pid,
            self.generation,
            now,
            replaces=replaces,
            reason=reason,
            request_limit=limit,
            expires_at=expires,
        )
        return [Watch(pid, limit)] if limit else []

    def served(self, pid: int, count: int, now: float) -> list[Action]:
        """Observed: ``pid`` has answered ``count`` requests.  Past its limit: recycle it."""
        worker = self.workers.get(pid)
        if worker is None or not worker.request_limit or count < worker.request_limit:
            return []
        return self.recycle(pid, Reason.MAX_REQUESTS, now)

    def sampled(self, pid: int, rss_mib: float, now: float) -> list[Action]:
        """Observed: ``pid`` holds ``rss_mib`` MiB of resident memory.  Past the limit: recycle."""
        if not self.memory or rss_mib <= self.memory:
            return []
        return self.recycle(pid, Reason.MEMORY, now)

    def ready(self, pid: int, now: float) -> list[Action]:
        worker = self.workers.get(pid)
        if worker is None or worker.ready:
            return []
        worker.ready = True
        actions: list[Action] = []
        failed = self.backoff.succeeded(worker.slot)
        if failed:
            actions.append(
                Log(
                    "info",
                    f"worker {worker.slot} (pid {pid}) booted after {failed} failure(s) in a row: "
                    "its back-off is reset",
                )
            )
            actions.append(BackingOff(worker.slot, 0, 0.0))
        if (
            not self.started
            and all(w.ready for w in self.workers.values())
            and not self.pending_spawns
            and not self.fork_retry
        ):
            self.started = True
        old_pid, worker.replaces = worker.replaces, None
        if old_pid is not None and old_pid in self.workers:
            actions += self._retire(self.workers[old_pid], worker.reason, now)
        if worker.generation < self.generation and not self.stopping:
            # spawned before a reload (a recycle under way): it may hold old code
            self.queue.append(
                (pid, Reason.RELOAD_SYNC if self.reload_mode == "sync" else Reason.RELOAD)
            )
        actions += self._next(now)
        return actions

    def exited(self, pid: int, code: int | None, sig: int | None, now: float) -> list[Action]:
        worker = self.workers.pop(pid, None)
        if worker is None:
            return []
        expected = bool(worker.retiring) or worker.killed or self.stopping
        ex = Exit(worker.slot, pid, code, sig, expected)
        actions: list[Action] = []
        if self.stopping:
            if code not in (0, None, EXIT_APP_LOAD):  # the master prints boot errors
                actions.append(Log("warning", describe(ex)))
            return actions
        if worker.retiring:
            if code not in (0, None) or (sig is not None and not worker.killed):
                actions.append(Log("warning", describe(ex)))
            if worker.retiring == Reason.RELOAD_SYNC:
                # a sync reload replaces a worker only after it has exited
                actions += self._spawn(worker.slot, None, worker.retiring)
            actions += self._next(now)
            return actions
        if not worker.ready:
            return actions + self._boot_failure(worker, ex, now)
        # a serving worker died on its own
        actions.append(Log("warning", describe(ex)))
        # a replacement that was on its way for it no longer replaces anything
        for other in self.workers.values():
            if other.replaces == pid:
                other.replaces = None
        self.queue = collections.deque((p, r) for p, r in self.queue if p != pid)
        if self.vacant(worker.slot):
            actions += self._spawn(worker.slot, None, Reason.CRASH)
        actions += self._next(now)
        return actions

    def _boot_failure(self, worker: Worker, ex: Exit, now: float) -> list[Action]:
        actions: list[Action] = []
        reason = "the app failed to load" if ex.code == EXIT_APP_LOAD else describe(ex)
        if not self.started:
            return [Halt(EXIT_APP_LOAD, f"worker {worker.slot} failed to boot: {reason}")]
        if worker.replaces is not None:
            # a replacement with broken code: abandon it and everything queued
            self.queue.clear()
            self.reloading = False
            actions.append(
                Log(
                    "error",
                    f"worker {worker.slot} (pid {worker.pid}) failed to boot ({reason}); "
                    "the reload or recycle is abandoned and the running workers keep serving "
                    "the old code",
                )
            )
            return actions
        if not self.vacant(worker.slot):
            return actions  # scaled down meanwhile, or someone else holds the slot
        step = self.backoff.failed(worker.slot, now)
        if step.delay <= 0:
            actions.append(
                Log("warning", f"worker {worker.slot} failed to boot ({reason}); respawning")
            )
            return actions + self._spawn(worker.slot, None, Reason.CRASH)
        serving = len(self.serving())
        actions.append(
            Log(
                "error",
                f"worker {worker.slot} failed to boot {step.failures} times in a row ({reason}); "
                f"next try in {step.delay:g}s, {serving} worker(s) serve meanwhile "
                "(SIGHUP tries new code now)",
            )
        )
        actions.append(BackingOff(worker.slot, step.failures, step.delay))
        return actions + self._reload_check()

    def fork_failed(self, slot: int, error: str, now: float) -> list[Action]:
        """The Spawn for ``slot`` could not fork (EAGAIN, ENOMEM): try again after a back-off.

        Never a halt, even at start-up: the shortage may be someone else's and
        pass; the server keeps serving with the workers it has meanwhile.
        """
        index = next((i for i, p in enumerate(self.pending_spawns) if p[0] == slot), None)
        if index is None:
            return []
        _, replaces, reason = self.pending_spawns.pop(index)
        if self.stopping:
            return []
        self.fork_retry[slot] = (replaces, reason)
        step = self.backoff.failed(slot, now)
        delay = max(step.delay, self.backoff.first)  # never at once: the shell is in fork()
        self.backoff.waiting[slot] = now + delay
        message = (
            f"cannot fork worker {slot} ({error}), {step.failures} time(s) in a row; "
            f"next try in {delay:g}s, {len(self.serving())} worker(s) serve meanwhile"
        )
        return [
            Log("error", message),
            BackingOff(slot, step.failures, delay),
            *self._reload_check(),
        ]

    def recycle(self, pid: int, reason: Reason, now: float) -> list[Action]:
        worker = self.workers.get(pid)
        if worker is None or not worker.ready or worker.retiring or self.stopping:
            return []
        if any(p == pid for p, _ in self.queue):
            return []
        if any(w.replaces == pid for w in self.workers.values()):
            return []
        self.queue.append((pid, reason))
        return self._next(now)

    def reload(self, now: float) -> list[Action]:
        if self.stopping:
            return []
        if self.reloading:
            return [Log("info", "a reload is already running: this one is coalesced into it")]
        self.reloading = True
        self.generation += 1
        reason = Reason.RELOAD_SYNC if self.reload_mode == "sync" else Reason.RELOAD
        for worker in sorted(self.workers.values(), key=lambda w: w.slot):
            queued = any(p == worker.pid for p, _ in self.queue)
            # a worker still booting is queued once it is ready (see ready())
            if worker.ready and not worker.retiring and not queued:
                self.queue.append((worker.pid, reason))
        actions: list[Action] = [
            Log("info", f"reloading {len(self.serving())} worker(s) ({self.reload_mode})")
        ]
        for slot in sorted(s for s in self.backoff.reset() if isinstance(s, int)):
            actions.append(Log("info", f"worker {slot}: back-off reset, trying the new code now"))
            actions.append(BackingOff(slot, 0, 0.0))
            actions += self._retry(slot)
        return actions + self._next(now)

    def timed_out(self, pid: int, now: float, graceful: bool = False) -> list[Action]:
        """A request ran past --timeout on ``pid``: replace it now, stop it (TERM, then KILL).

        ``graceful``: the worker answered 504 itself and serves on (a base-mode
        worker's thread that cannot be stopped): replace it the graceful way,
        replacement first, so the connections it holds are not cut off.
        """
        if graceful:
            return self.recycle(pid, Reason.TIMEOUT, now)
        worker = self.workers.get(pid)
        if worker is None or self.stopping or worker.killed:
            return []
        worker.retiring = Reason.TIMEOUT
        worker.retire_at = now
        worker.killed = True
        self.queue = collections.deque((p, r) for p, r in self.queue if p != pid)
        actions: list[Action] = [Kill(pid, signal.SIGTERM, Reason.TIMEOUT)]
        if worker.slot <= self.target:
            actions += self._spawn(worker.slot, None, Reason.TIMEOUT)
        return actions

    def scale(self, delta: int, now: float) -> list[Action]:
        if self.stopping:
            return []
        if delta > 0:
            self.target += 1
            return self._spawn(self.target, None, Reason.SCALE_UP)
        if self.target <= 1:
            return [Log("warning", "SIGTTOU: already at one worker")]
        slot = self.target
        self.target -= 1
        self.pending_spawns = [p for p in self.pending_spawns if p[0] != slot]
        actions: list[Action] = []
        if slot in self.backoff.waiting:
            actions.append(BackingOff(slot, 0, 0.0))
        self.backoff.forget(slot)
        self.fork_retry.pop(slot, None)
        for worker in self.by_slot(slot):
            self.queue = collections.deque((p, r) for p, r in self.queue if p != worker.pid)
            worker.replaces = None
            actions += self._retire(worker, Reason.SCALE_DOWN, now)
        return actions

    def stop(self) -> None:
        self.stopping = True
        self.queue.clear()

    def tick(self, now: float) -> list[Action]:
        """Escalate: a retiring worker past max_wait is killed; a TERMed one past the grace, too.

        And respawn the slots whose back-off is over.
        """
        actions: list[Action] = []
        for slot in self.backoff.due(now):
            assert isinstance(slot, int)
            actions += self._retry(slot)
        for worker in self.serving():
            if now >= worker.expires_at:
                worker.expires_at = math.inf
                actions += self.recycle(worker.pid, Reason.LIFETIME, now)
        for worker in list(self.workers.values()):
            if not worker.retiring:
                continue
            if worker.killed and worker.retiring == Reason.TIMEOUT:
                if now - worker.retire_at >= self.kill_grace:
                    worker.retire_at = float("inf")
                    actions.append(Kill(worker.pid, signal.SIGKILL, Reason.TIMEOUT))
            elif not worker.killed and now - worker.retire_at >= self.max_wait:
                worker.killed = True
                actions.append(
                    Log(
                        "warning",
                        f"worker {worker.slot} (pid {worker.pid}) did not finish its requests "
                        f"in {self.max_wait:g}s: killing it",
                    )
                )
                actions.append(Kill(worker.pid, signal.SIGKILL, worker.retiring))
        return actions

    def _retry(self, slot: int) -> list[Action]:
        """A back-off is over (or reset): spawn what ``slot`` was waiting for."""
        replaces, reason = self.fork_retry.pop(slot, (None, Reason.CRASH))
        if self.stopping:
            return []
        old = self.workers.get(replaces) if replaces is not None else None
        if old is not None and old.ready and not old.retiring:
            return self._spawn(slot, old.pid, reason)  # the replacement it was to be
        if self.vacant(slot):
            return self._spawn(slot, None, Reason.CRASH if replaces is not None else reason)
        return []

    def wake_at(self) -> float | None:
        """When :meth:`tick` must run next for a back-off (None: no hurry)."""
        return self.backoff.wake_at()

    # -- helpers ------------------------------------------------------------------------------

    def _spawn(self, slot: int, replaces: int | None, reason: Reason) -> list[Action]:
        self.pending_spawns.append((slot, replaces, reason))
        limit = self._limits[slot] = request_limit(self.max_requests, self.jitter, self.rng)
        return [Spawn(slot, reason, limit)]

    def _retire(self, worker: Worker, reason: Reason, now: float) -> list[Action]:
        worker.retiring = reason
        worker.retire_at = now
        if not worker.ready:
            # still booting: it holds no requests and the reactor has no slot for it yet
            worker.killed = True
            return [Kill(worker.pid, signal.SIGTERM, reason)]
        return [Retire(worker.pid, reason)]

    def _next(self, now: float) -> list[Action]:
        """Start queued replacements while fewer than max_concurrent are under way."""
        actions: list[Action] = []
        while self.queue and self.in_progress() < self.max_concurrent:
            pid, reason = self.queue.popleft()
            worker = self.workers.get(pid)
            if worker is None or worker.retiring or not worker.ready:
                continue
            if reason == Reason.RELOAD_SYNC:
                actions += self._retire(worker, reason, now)
            else:
                # async: the old worker serves on until its replacement is ready
                actions += self._spawn(worker.slot, pid, reason)
        return actions + self._reload_check()

    def _reload_check(self) -> list[Action]:
        """A reload is finished once no queued, replacing or older worker is left.

        A worker that was still booting when the reload began (during start-up,
        say) holds code from before it: the reload waits for its replacement.
        """
        if not self.reloading or self.queue or self.in_progress():
            return []
        if any(w.generation < self.generation and not w.retiring for w in self.workers.values()):
            return []
        self.reloading = False
        return [Reloaded()]


def steps_to(current: int, target: int) -> list[int]:
    """The ``scale(±1)`` steps that take ``current`` workers to ``target`` (at least 1)."""
    target = max(1, target)
    return [1 if target > current else -1] * abs(target - current)


def request_limit(max_requests: int, jitter: int, rng: random.Random | None = None) -> int:
    """One worker's own --max-requests: N + random(0, J), as Swoole does (0: never).

    Jitter keeps workers started together from recycling together.
    """
    if not max_requests:
        return 0
    return max_requests + (rng or random).randint(0, jitter)
