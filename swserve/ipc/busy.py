"""How busy each worker is, shared by every reactor process (``--reactors N``).

With several reactors, each one knows only the requests *it* gave a worker.
To send a request to an idle worker (dispatch ``idle``) a reactor must also
know what the others gave it, so every worker publishes its own count of
requests in hand in one cell of an anonymous shared mapping, created by the
master before anything forks.  One writer per cell (the worker), plain
stores, no locks: a reactor reading a stale count only makes a less perfect
choice, never a wrong one, since it falls back to the least-loaded worker.

Cells are handed out by the manager, in turn (``next_cell``: a replacement
never gets its predecessor's cell while a reactor may still think that one
alive), and travel in the worker's HELLO.  A dead worker's cell reads full.
With one reactor there is no table and nothing is published.
"""

from __future__ import annotations

import mmap
from typing import Final

CELLS: Final = 4096  # workers alive at once, replacements included


class BusyTable:
    """Per cell: requests the worker holds now (u16) and has answered in all (u32)."""

    def __init__(self, cells: int = CELLS) -> None:
        # MAP_SHARED | MAP_ANONYMOUS: the same pages in every process forked after this
        self._mem = mmap.mmap(-1, cells * 6)
        view = memoryview(self._mem)
        self.served = view[: cells * 4].cast("I")  # --max-requests counts every reactor's
        self.counts = view[cells * 4 :].cast("H")

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


def create() -> BusyTable:
    global TABLE
    TABLE = BusyTable()
    return TABLE
