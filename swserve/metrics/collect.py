"""What /metrics and /readyz read: the master's state as one additive snapshot.

Two kinds of source are merged (``exposition.merge``, i.e. addition):

- one snapshot per reactor: its :class:`RequestMetrics` plus the gauges only
  it knows (open connections, queued and in-flight requests).  In process
  mode today the only reactor runs inside the master, so no IPC is needed;
  a reactor process, or a worker in base mode, would send the same dict.
- one snapshot of the master itself: workers and their restarts, reloads and
  readiness, which exist once per server whatever serves the clients.

Everything is read on the master's loop: a scrape costs a walk over the
worker links and the queue, never a wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from swserve.metrics.exposition import (
    BACKING_OFF,
    BOOT_FAILURES,
    CONN_OPEN,
    IN_FLIGHT,
    QUEUED,
    READY,
    RELOADS,
    RESTARTS,
    USER_PROCESS_RESTARTS,
    WORKERS_ALIVE,
    WORKERS_BUSY,
    WORKERS_RETIRING,
    key,
    merge,
)

if TYPE_CHECKING:
    from swserve.master.stats import Stats
    from swserve.reactor.core import Reactor
    from swserve.tasks.server import TaskServer

# manager reasons that are not restarts (the worker is not replaced) or that
# name the same thing as another reason
_NOT_RESTARTS = frozenset({"scale-down"})
_SAME_AS = {"reload-sync": "reload"}


class MasterView(Protocol):
    """What the collector reads from the master (swserve/master/main.py: Master)."""

    announced: bool  # every worker was ready once: "Listening on" was logged
    stopping: bool  # a shutdown (drain) has begun
    stats: Stats
    tasks: TaskServer | None  # --task-workers N: the task broker's shell
    user_process_restarts: int

    @property
    def reactor(self) -> Reactor: ...


def reactor_snapshot(reactor: Reactor) -> dict[str, int]:
    """One reactor's request counters and connection/queue gauges."""
    out = reactor.metrics.snapshot() if reactor.metrics is not None else {}
    if reactor.ws.metrics is not None:
        out.update(reactor.ws.metrics.snapshot(len(reactor.ws)))
    out = merge((out, reactor.remote.snapshot()))  # base-mode workers' own counts
    out[CONN_OPEN] = out.get(CONN_OPEN, 0) + len(reactor.sessions)
    out[QUEUED] = out.get(QUEUED, 0) + sum(1 for c in reactor.queue if c.current is not None)
    out[IN_FLIGHT] = out.get(IN_FLIGHT, 0) + reactor.in_flight()
    return out


def workers_alive(reactor: Reactor) -> int:
    return sum(1 for link in reactor.links.values() if link.slot and not link.slot.retiring)


def readiness(view: MasterView) -> tuple[bool, str]:
    """(ready, why): not while starting, draining, or with no worker taking requests."""
    if view.stopping:
        return False, "draining"
    if not view.announced:
        return False, "starting"
    if not workers_alive(view.reactor):
        if view.stats.backoff:
            return False, "no worker is ready: respawns keep failing to boot (back-off)"
        return False, "no worker is ready"
    if view.stats.backoff:  # serving, with fewer workers than asked for
        slots = ", ".join(str(s) for s in sorted(view.stats.backoff))
        return True, f"ready (degraded: worker {slots} keeps failing to boot)"
    return True, "ready"


def master_snapshot(view: MasterView) -> dict[str, int]:
    """Workers, restarts and reloads: the server-wide part, counted once."""
    reactor = view.reactor
    stats = view.stats
    slots = [link.slot for link in reactor.links.values() if link.slot is not None]
    out = {
        WORKERS_ALIVE: sum(1 for s in slots if not s.retiring),
        WORKERS_BUSY: sum(
            1 for s in slots if not s.retiring and (s.inflight or reactor.remote.in_flight(s.key))
        ),
        WORKERS_RETIRING: sum(1 for s in slots if s.retiring),
        RELOADS: stats.reloads,
        READY: int(readiness(view)[0]),
        BACKING_OFF: len(stats.backoff),
        BOOT_FAILURES: stats.boot_failures,
        key(RESTARTS, "crash"): stats.crashes,
        key(RESTARTS, "timeout"): stats.timeouts,
    }
    for reason, n in stats.recycled.items():
        if reason not in _NOT_RESTARTS:
            k = key(RESTARTS, _SAME_AS.get(reason, reason))
            out[k] = out.get(k, 0) + n
    return out


def task_snapshot(view: MasterView) -> dict[str, int]:
    """Task workers, the task queue and tasks run (all kept by the master's broker)."""
    out = view.tasks.snapshot() if view.tasks is not None else {}
    out[USER_PROCESS_RESTARTS] = view.user_process_restarts
    return out


def collect(view: MasterView) -> dict[str, int]:
    """The whole server's snapshot: every reactor's plus the master's own."""
    return merge((reactor_snapshot(view.reactor), master_snapshot(view), task_snapshot(view)))
