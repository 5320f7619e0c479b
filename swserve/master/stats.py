"""Server-wide and per-worker counters kept by the master, behind one object.

The reactor counts requests per worker slot; this object keeps what outlives
a slot (recycles by reason, crashes, timeouts, exits, reloads) and renders
the one-line summaries logged after a reload and at shutdown.  The same
counters feed /metrics (swserve/metrics/collect.py).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swserve.reactor.core import Reactor


@dataclass
class WorkerRecord:
    worker_id: int
    pid: int
    started_at: float
    served: int = 0


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    workers: dict[int, WorkerRecord] = field(default_factory=dict)  # pid → record
    recycled: collections.Counter[str] = field(default_factory=collections.Counter)
    exits: int = 0
    served_by_gone: int = 0  # requests served by workers that have exited
    crashes: int = 0  # serving workers that exited when nobody asked them to
    timeouts: int = 0  # workers replaced because a request ran past --timeout (or went silent)
    reloads: int = 0  # reloads finished
    retiring: dict[int, str] = field(default_factory=dict)  # pid → why, until it exits
    boot_failures: int = 0  # respawns that failed to boot once the server had served
    backoff: dict[int, int] = field(default_factory=dict)  # slot → boot failures in a row
    # pids that have been ready, until they exit; of those, the ones we asked to go
    _served: set[int] = field(default_factory=set)
    _expected: set[int] = field(default_factory=set)

    def worker_ready(self, worker_id: int, pid: int) -> None:
        self.workers[pid] = WorkerRecord(worker_id, pid, time.time())
        self._served.add(pid)

    def worker_retired(self, pid: int, reason: str) -> None:
        self.recycled[reason] += 1
        self.retiring[pid] = reason
        self._expected.add(pid)

    def worker_timed_out(self, pid: int) -> None:
        if pid not in self._expected:
            self.timeouts += 1
            self._expected.add(pid)

    def worker_exited(self, pid: int, *, stopping: bool) -> None:
        """A worker process ended: a crash if it had served and nobody asked it to stop."""
        self.exits += 1
        if pid in self._served and pid not in self._expected and not stopping:
            self.crashes += 1
        self._served.discard(pid)
        self._expected.discard(pid)
        self.retiring.pop(pid, None)

    def worker_backoff(self, slot: int, failures: int) -> None:
        """The manager's crash-loop back-off for ``slot``: ``failures`` in a row (0: over)."""
        if failures:
            self.boot_failures += 1
            self.backoff[slot] = failures
        else:
            self.backoff.pop(slot, None)

    def worker_lost(self, pid: int, served: int) -> None:
        """A worker's link closed: keep its request count in the totals."""
        self.workers.pop(pid, None)
        self.served_by_gone += served

    def snapshot(self, reactor: Reactor) -> dict[str, object]:
        """Per-worker state (IDLE/BUSY, requests, in flight) and server-wide totals."""
        per_worker = []
        served = self.served_by_gone
        for link in reactor.links.values():
            slot = link.slot
            if slot is None:
                continue
            record = self.workers.get(slot.pid)
            if record is not None:
                record.served = slot.served
            served += slot.served
            per_worker.append(
                {
                    "worker": slot.worker_id,
                    "pid": slot.pid,
                    "status": "BUSY" if slot.inflight else "IDLE",
                    "requests": slot.served,
                    "in_flight": slot.inflight,
                    "retiring": slot.retiring,
                    "started_at": record.started_at if record else None,
                }
            )
        return {
            "requests": served,
            "in_flight": sum(w["in_flight"] for w in per_worker),  # type: ignore[misc]
            "queued": len(reactor.queue),
            "connections": reactor.connections(),
            "workers": per_worker,
            "recycled": dict(self.recycled),
            "worker_exits": self.exits,
        }

    def summary(self, reactor: Reactor) -> str:
        snap = self.snapshot(reactor)
        recycled = ", ".join(f"{k} {v}" for k, v in sorted(self.recycled.items())) or "none"
        workers = snap["workers"]
        assert isinstance(workers, list)
        return (
            f"{snap['requests']} requests served, {snap['in_flight']} in flight, "
            f"{len(workers)} workers, recycled: {recycled}, worker exits: {self.exits}"
        )
