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
ip, key:...    client affinity: the worker that :func:`rendezvous` gives the
               request's key (client address, header or cookie value), waiting
               for it when it is busy; requests without a key go as ``idle``
=============  ==============================================================

Affinity requests that wait do so in :class:`Waiting`: one FIFO per worker
slot, beside the shared FIFO of ``idle``, so a request waiting for a busy
worker A never holds up one that idle worker B could take.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from swserve.settings.dispatch import AFFINITY, parse

if TYPE_CHECKING:
    from swserve.ipc.busy import BusyTable


class WorkerSlot:
    """The reactor's view of one ready worker."""

    __slots__ = (
        "capacity",
        "cell",
        "inflight",
        "key",
        "pid",
        "recycle_asked",
        "retiring",
        "served",
        "worker_id",
    )

    def __init__(self, key: int, worker_id: int, pid: int, capacity: int) -> None:
        self.key = key  # unique per connected channel, never reused
        self.worker_id = worker_id
        self.pid = pid
        self.capacity = capacity
        self.inflight = 0
        self.served = 0
        self.recycle_asked = False  # its watched count was reported (reactor.watch)
        self.retiring = False
        self.cell = 0  # the worker's cell in the shared busy table (--reactors N)

    def __repr__(self) -> str:
        return f"<WorkerSlot worker={self.worker_id} pid={self.pid} inflight={self.inflight}/{self.capacity}>"


# Rendezvous (highest random weight) hashing.  Each slot number s gets the score
# bytes [4(s-1), 4s) of the key's BLAKE2b digest (64 bytes: 16 slots per digest,
# salted per block of 16 beyond that), and the live slot with the highest score
# owns the key.  A slot's score depends on the key and that slot only, so adding
# or removing a slot moves only the keys it wins or held.  Measured on the project
# VM: one 64-byte digest ~0.8 µs, against ~0.9 µs per slot for one 8-byte digest
# each, or a pure-Python 64-bit mix per slot; zlib.crc32 is cheaper but affine,
# which skews the argmax.  Python's hash() is salted per process: every reactor
# process must map a key to the same slot.
_PER_DIGEST: Final = 16


def rendezvous(key: bytes, slot_ids: tuple[int, ...]) -> int:
    """The slot number (1-based, from ``slot_ids``, not empty) that owns ``key``."""
    scores = memoryview(hashlib.blake2b(key).digest()).cast("I")
    block = 0
    best = -1
    winner = slot_ids[0]
    for sid in slot_ids:
        index = sid - 1
        if index // _PER_DIGEST != block:
            block = index // _PER_DIGEST
            salt = block.to_bytes(16, "little")
            scores = memoryview(hashlib.blake2b(key, salt=salt).digest()).cast("I")
        score = scores[index % _PER_DIGEST]
        if score > best:  # ties: the lower slot number
            best, winner = score, sid
    return winner


_CACHE_LIMIT: Final = 4096  # keys whose owner is remembered: header values are client-chosen


class Dispatcher:
    def __init__(self, mode: str, busy: BusyTable | None = None) -> None:
        self.spec = parse(mode)
        self.mode = self.spec.mode
        self.affinity = self.mode in AFFINITY
        # with several reactors, what the others gave each worker (ipc/busy.py)
        self.busy = busy
        self.slots: list[WorkerSlot] = []
        self._next = 0
        # affinity: slot number -> the newest ready worker in it, and the numbers sorted
        self._owners: dict[int, WorkerSlot] = {}
        self._ids: tuple[int, ...] = ()
        self._cache: dict[bytes, int] = {}  # key -> slot number, for the current set
        self.generation = 0  # bumped whenever the set of slots changes

    def add(self, slot: WorkerSlot) -> None:
        self.slots.append(slot)
        self.slots.sort(key=lambda s: (s.worker_id, s.key))
        self._changed()

    def remove(self, slot: WorkerSlot) -> None:
        if slot in self.slots:
            self.slots.remove(slot)
            self._changed()

    def _changed(self) -> None:
        # a replacement shares its predecessor's slot number until that one retires:
        # the newest (highest link key, later in the sort) takes the slot's keys
        self._owners = {s.worker_id: s for s in self.slots}
        self._ids = tuple(self._owners)
        self._cache.clear()
        self.generation += 1

    def owner(self, key: bytes) -> WorkerSlot | None:
        """Affinity: the worker that owns ``key`` in the current set (None: no worker)."""
        ids = self._ids
        if not ids:
            return None
        sid = self._cache.get(key)
        if sid is None:
            sid = rendezvous(key, ids)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = sid
        return self._owners[sid]

    def slot(self, sid: int) -> WorkerSlot | None:
        """The ready worker in slot number ``sid``, if any."""
        return self._owners.get(sid)

    def room(self, slot: WorkerSlot) -> bool:
        """Can ``slot`` take one more request now (every reactor's work counted)?"""
        load = slot.inflight
        if self.busy is not None:
            load = max(load, self.busy.counts[slot.cell])
        return load < slot.capacity

    def pick(self, session: int) -> WorkerSlot | None:
        """The worker for a request with no affinity key (None: it waits)."""
        slots = self.slots
        n = len(slots)
        if n == 0:
            return None
        if self.mode in ("idle", "ip", "key"):
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


T = TypeVar("T")


class Waiting(Generic[T]):
    """Requests that wait in the reactor for a worker, in arrival order.

    ``shared``: for any worker (``idle``, and requests without an affinity
    key), taken by whichever worker frees up.  ``pinned``: per slot number,
    the affinity requests that wait for *that* worker.  When the set of
    workers changes (a worker retired, died, came back, or the count
    changed), pinned requests follow their key's new owner.

    ``len()`` counts both, for ``--max-queued-requests``.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.shared: collections.deque[T] = collections.deque()
        self.pinned: dict[int, collections.deque[tuple[T, bytes]]] = {}
        self._pinned = 0
        self._generation = dispatcher.generation

    def __len__(self) -> int:
        return len(self.shared) + self._pinned

    def __bool__(self) -> bool:
        return bool(self.shared) or self._pinned > 0

    def __iter__(self) -> Iterator[T]:
        yield from self.shared
        for items in self.pinned.values():
            for item, _ in items:
                yield item

    def append(self, item: T) -> None:
        self.shared.append(item)

    def pin(self, item: T, key: bytes, owner: WorkerSlot | None) -> None:
        """``item`` waits for ``owner`` (None: no worker is ready yet)."""
        self._follow_owners()
        self.pinned.setdefault(owner.worker_id if owner else 0, collections.deque()).append(
            (item, key)
        )
        self._pinned += 1

    def waits_for(self, slot: WorkerSlot) -> bool:
        """Does any pinned request wait for ``slot``?  (A new one queues behind it.)"""
        self._follow_owners()
        return slot.worker_id in self.pinned

    def remove(self, item: T) -> None:
        """Forget ``item`` (its client left); nothing if it is not waiting."""
        try:
            self.shared.remove(item)
            return
        except ValueError:
            pass
        for sid, items in self.pinned.items():
            for entry in items:
                if entry[0] is item:
                    items.remove(entry)
                    self._pinned -= 1
                    if not items:
                        del self.pinned[sid]
                    return

    def ready(
        self, alive: Callable[[T], bool], session: Callable[[T], int]
    ) -> Iterator[tuple[T, WorkerSlot]]:
        """The waiting requests that can go now, with their worker, oldest first.

        Lazy: the caller sends each one (which fills the worker) before asking
        for the next.  Requests whose client left (not ``alive``) are dropped.
        """
        self._follow_owners()
        dispatcher = self.dispatcher
        for sid in list(self.pinned):
            slot = dispatcher.slot(sid)
            if slot is None:
                continue
            items = self.pinned[sid]
            while items and dispatcher.room(slot):
                item, _ = items.popleft()
                self._pinned -= 1
                if alive(item):
                    yield item, slot
            if not items:
                del self.pinned[sid]
        shared = self.shared
        while shared:
            item = shared[0]
            if not alive(item):
                shared.popleft()
                continue
            target = dispatcher.pick(session(item))
            if target is None:
                break
            shared.popleft()
            yield item, target

    def _follow_owners(self) -> None:
        """After the set of workers changed, move each pinned request to its key's owner."""
        dispatcher = self.dispatcher
        if self._generation == dispatcher.generation:
            return
        self._generation = dispatcher.generation
        if not self.pinned:
            return
        old, self.pinned = self.pinned, {}
        for items in old.values():
            for item, key in items:
                owner = dispatcher.owner(key)
                sid = owner.worker_id if owner else 0
                self.pinned.setdefault(sid, collections.deque()).append((item, key))
