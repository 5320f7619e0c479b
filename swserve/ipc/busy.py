"""How busy each worker is, shared by every reactor process (``--reactors N``).

With several reactors, each one knows only the requests *it* gave a worker.
To send a request to an idle worker (dispatch ``idle``) a reactor must also
know what the others gave it, so every worker publishes its own count of
requests in hand in one cell of an anonymous shared mapping, created by the
master before anything forks.  One writer per cell (the worker), plain
stores, no locks: a reactor reading a stale count only makes a less perfect
choice, never a wrong one, since it falls back to the least-loaded worker.

Publishing alone was not enough: two reactors that read a worker's count
before the worker had received either's request both sent it one, and a
worker with room for 3 held 5.  So each reactor also *reserves* what it
sends: reactor r keeps how many requests it has given each worker in its own
row (one writer per row), and takes one more only under a lock on that
worker's cell (``claim``), having read the other reactors' rows and the
worker's own count: a slot of a worker's capacity is reserved by exactly one
reactor.  The lock is a POSIX record lock on one byte of a memfd (one byte
per cell): the kernel drops it if its holder is killed, so a reactor's
``kill -9`` cannot leave a cell locked; a respawned reactor clears its row,
and the worker's own count still covers what the dead one had given it.
Answers are released without the lock (the row's owner lowers its own count;
a reader that sees the old value only waits a little longer).

Cells are handed out by the manager, in turn (``next_cell``: a replacement
never gets its predecessor's cell while a reactor may still think that one
alive), and travel in the worker's HELLO.  A dead worker's cell reads full.
With one reactor there is no table and nothing is published.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from typing import Final

CELLS: Final = 4096  # workers alive at once, replacements included


class BusyTable:
    """Per cell: requests the worker holds now (u16) and has answered in all (u32);
    per reactor and cell: requests that reactor has given the worker (u16)."""

    def __init__(self, cells: int = CELLS, reactors: int = 2) -> None:
        self.cells = cells
        self.reactors = reactors
        # MAP_SHARED | MAP_ANONYMOUS: the same pages in every process forked after this
        self._mem = mmap.mmap(-1, cells * (6 + 2 * reactors))
        view = memoryview(self._mem)
        self.served = view[: cells * 4].cast("I")  # --max-requests counts every reactor's
        self.counts = view[cells * 4 : cells * 6].cast("H")
        self.reserved = view[cells * 6 :].cast("H")  # reactor r's row: [r * cells, …)
        self.lock_fd = os.memfd_create("swserve-busy", os.MFD_CLOEXEC)  # one byte per cell
        # per reactor: where the other reactors' rows start
        self._others = [
            tuple(q * cells for q in range(reactors) if q != r) for r in range(reactors)
        ]

    def claim(self, reactor: int, cell: int, mine: int, capacity: int) -> bool:
        """Reserve one more of ``cell``'s worker for ``reactor`` (which has ``mine`` on it).

        False: the worker is full, counting what every reactor has given it.
        """
        fcntl.lockf(self.lock_fd, fcntl.LOCK_EX, 1, cell)
        try:
            if max(self.others(reactor, cell) + mine, self.counts[cell]) >= capacity:
                return False
            self.reserved[reactor * self.cells + cell] = mine + 1
            return True
        finally:
            fcntl.lockf(self.lock_fd, fcntl.LOCK_UN, 1, cell)

    def others(self, reactor: int, cell: int) -> int:
        """What the other reactors have given ``cell``'s worker (a lockless read)."""
        reserved = self.reserved
        total = 0
        for start in self._others[reactor]:
            total += reserved[start + cell]
        return total

    def load(self, reactor: int, cell: int, mine: int) -> int:
        """Requests ``cell``'s worker has, or has been given, from every reactor."""
        return max(self.others(reactor, cell) + mine, self.counts[cell])

    def release(self, reactor: int, cell: int, mine: int) -> None:
        """``reactor`` now has ``mine`` requests on ``cell``'s worker (answers, no lock)."""
        self.reserved[reactor * self.cells + cell] = min(mine, 0xFFFF)

    def clear(self, reactor: int) -> None:
        """A respawned reactor: nothing given by its row (the worker counts what it still runs)."""
        start = reactor * self.cells
        self.reserved[start : start + self.cells] = memoryview(bytes(2 * self.cells)).cast("H")

    def set(self, cell: int, count: int) -> None:
        self.counts[cell] = min(count, 0xFFFF)

    def done(self, cell: int, count: int) -> None:
        """One request answered; ``count`` still held."""
        self.served[cell] = (self.served[cell] + 1) & 0xFFFFFFFF
        self.counts[cell] = min(count, 0xFFFF)

    def reset(self, cell: int) -> None:
        """A new worker takes the cell over (the manager calls this before forking it)."""
        self.served[cell] = 0
        self.counts[cell] = 0

    def dead(self, cell: int) -> None:
        """Its worker has exited: full, so no reactor that has not yet seen it go picks it."""
        self.counts[cell] = 0xFFFF


def next_cell(used: set[int], last: int, cells: int = CELLS) -> int:
    """The cell for a new worker: the first after ``last`` that no live worker holds.

    In turn, not the lowest free one: a dead worker's cell handed straight to
    its replacement read 0 (idle) to a reactor that had not yet read the dead
    worker's EOF, which then sent it a request that could only end in a 502
    (test_killed_worker_gives_502_to_its_request_only_and_is_replaced
    [reactors] flaked on it).
    """
    for step in range(1, cells + 1):
        cell = (last + step) % cells
        if cell not in used:
            return cell
    raise RuntimeError(f"all {cells} busy-table cells are held by live workers")


TABLE: BusyTable | None = None  # set in the master when --reactors > 1, inherited by all


def create(reactors: int) -> BusyTable:
    global TABLE
    TABLE = BusyTable(reactors=reactors)
    return TABLE
