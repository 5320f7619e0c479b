"""The respawn rule for a process that keeps failing to boot: sans-IO, one per process kind.

Once the server has served, a process that cannot boot (broken code on disk, a
missing database at import time, a full disk) must not stop the server, nor
be forked again in a tight loop.  Its respawns are spaced out, exponentially,
up to a cap, while the healthy processes keep serving::

    failures in a row   1     2      3    4    5    6    7     8 …
    next try after      0 s   0.5 s  1 s  2 s  4 s  8 s  16 s  30 s (the cap) …

The first failure is retried at once (a one-off: an OOM kill while
importing, a race with a deploy).  A process that becomes ready resets its
key; so does :meth:`Backoff.reset`, which a SIGHUP calls to try new code now.

Keys are whatever names one process of a kind: a worker's slot, a task
worker's slot, a user process's name.  No clock is read here: ``now`` comes
from the caller, as in :mod:`swserve.manager.policy`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

FIRST: Final = 0.5  # seconds before the second try
CAP: Final = 30.0  # the longest wait between two tries


@dataclass(frozen=True, slots=True)
class Step:
    """One failure's outcome: how many in a row, and when to try again."""

    failures: int
    delay: float  # seconds; 0: at once
    due: float  # the clock value at which to respawn


@dataclass(slots=True)
class Backoff:
    first: float = FIRST
    cap: float = CAP
    failures: dict[Hashable, int] = field(default_factory=dict)  # key → failures in a row
    waiting: dict[Hashable, float] = field(default_factory=dict)  # key → due time

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1-based)."""
        if failures <= 1:
            return 0.0
        return min(self.cap, self.first * 2.0 ** (failures - 2))

    def failed(self, key: Hashable, now: float) -> Step:
        """``key`` failed to boot: count it, and say when to try again.

        A zero delay means "respawn now" and the key is not left waiting.
        """
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        delay = self.delay(n)
        if delay > 0:
            self.waiting[key] = now + delay
        return Step(n, delay, now + delay)

    def succeeded(self, key: Hashable) -> int:
        """``key`` booted: forget its failures (→ how many there were)."""
        self.waiting.pop(key, None)
        return self.failures.pop(key, 0)

    def due(self, now: float) -> list[Hashable]:
        """The keys whose wait is over, taken out of ``waiting``, earliest first."""
        keys = [k for k, t in sorted(self.waiting.items(), key=lambda kt: kt[1]) if t <= now]
        for key in keys:
            del self.waiting[key]
        return keys

    def reset(self) -> list[Hashable]:
        """Forget every failure (a SIGHUP: new code); → the keys that were waiting."""
        waiting = list(self.waiting)
        self.waiting.clear()
        self.failures.clear()
        return waiting

    def forget(self, key: Hashable) -> None:
        """``key`` is gone for good (scaled down)."""
        self.waiting.pop(key, None)
        self.failures.pop(key, None)

    def wake_at(self) -> float | None:
        """The earliest due time, for the caller's timer; None when nothing waits."""
        return min(self.waiting.values(), default=None)
