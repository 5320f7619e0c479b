"""Dispatch modes as pure policies: which worker gets the next complete request.

No I/O here.  The reactor keeps one :class:`Dispatcher`; each connected,
ready worker is a :class:`WorkerSlot`.  ``pick`` returns a slot, or ``None``
when the request must wait in the reactor's queue (never pushed into a busy
worker's pipe in ``idle`` mode: Swoole's preemptive dispatch).

=============  ==============================================================
mode           rule
=============  ==============================================================
idle           the next idle worker in round order; else the least loaded one
               with room (an ASGI worker runs many requests); else wait
round-robin    the next worker in turn, busy or not
fd             session id modulo the worker count: a connection always meets
               the same worker (while the set of workers does not change)
=============  ==============================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from swserve.ipc.busy import BusyTable


class WorkerSlot:
    """The reactor's view of one ready worker."""

    __slots__ = (
        "capacity",
        "cell",
        "inflight",
        "key",
        "limit",
        "pid",
        "recycle_asked",
        "retiring",
        "served",
        "worker_id",
    )

    def __init__(self, key: int, worker_id: int, pid: int, capacity: int, limit: int = 0) -> None:
        self.key = key  # unique per connected channel, never reused
        self.worker_id = worker_id
        self.pid = pid
        self.capacity = capacity
        self.inflight = 0
        self.served = 0
        self.limit = limit  # recycle after this many requests (0: never)
        self.recycle_asked = False
        self.retiring = False
        self.cell = 0  # the worker's cell in the shared busy table (--reactors N)

    def __repr__(self) -> str:
        return f"<WorkerSlot worker={self.worker_id} pid={self.pid} inflight={self.inflight}/{self.capacity}>"


MODES: Final = ("idle", "round-robin", "fd")


class Dispatcher:
    def __init__(self, mode: str, busy: BusyTable | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown dispatch mode {mode!r}")
        self.mode = mode
        # with several reactors, what the others gave each worker (ipc/busy.py)
        self.busy = busy
        self.slots: list[WorkerSlot] = []
        self._next = 0

    def add(self, slot: WorkerSlot) -> None:
        self.slots.append(slot)
        self.slots.sort(key=lambda s: (s.worker_id, s.key))

    def remove(self, slot: WorkerSlot) -> None:
        if slot in self.slots:
            self.slots.remove(slot)

    def pick(self, session: int) -> WorkerSlot | None:
        slots = self.slots
        n = len(slots)
        if n == 0:
            return None
        if self.mode == "idle":
            if self.busy is not None:
                return self._pick_idle_shared(slots, n, self.busy.counts)
            return self._pick_idle(slots, n)
        if self.mode == "round-robin":
            slot = slots[self._next % n]
            self._next = (self._next + 1) % n
            return slot
        return slots[session % n]

    def _pick_idle(self, slots: list[WorkerSlot], n: int) -> WorkerSlot | None:
        start = self._next
        best: WorkerSlot | None = None
        for i in range(n):
            slot = slots[(start + i) % n]
            if slot.inflight == 0:
                self._next = (start + i + 1) % n
                return slot
            if slot.inflight < slot.capacity and (best is None or slot.inflight < best.inflight):
                best = slot
        return best

    def _pick_idle_shared(
        self, slots: list[WorkerSlot], n: int, counts: memoryview
    ) -> WorkerSlot | None:
        """``_pick_idle`` when other reactors feed the same workers.

        Idle means idle for everyone: nothing from us and nothing published by
        the worker.  Room counts everyone's work too, so a request waits in
        the reactor rather than in a busy worker's pipe (the reactor looks
        again shortly, see Reactor._watch_queue).
        """
        start = self._next
        best: WorkerSlot | None = None
        best_load = 0
        for i in range(n):
            slot = slots[(start + i) % n]
            held = counts[slot.cell]
            if slot.inflight == 0 and held == 0:
                self._next = (start + i + 1) % n
                return slot
            load = max(slot.inflight, held)
            if load < slot.capacity and (best is None or load < best_load):
                best, best_load = slot, load
        return best

    def has_room(self) -> bool:
        """Could ``pick`` return a slot now?  (Queued requests wait for this.)"""
        if self.mode != "idle":
            return bool(self.slots)
        return any(s.inflight < s.capacity for s in self.slots)
