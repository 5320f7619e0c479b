"""How busy each worker is, shared by every reactor process (``--reactors N``).

With several reactors, each one knows only the requests *it* gave a worker.
To send a request to an idle worker (dispatch ``idle``) a reactor must also
know what the others gave it, so every worker publishes its own count of
requests in hand in one cell of an anonymous shared mapping, created by the
master before anything forks.  One writer per cell (the worker), plain
stores, no locks: a reactor reading a stale count only makes a less perfect
choice, never a wrong one, since it falls back to the least-loaded worker.

Cells are handed out by the manager (a replacement never shares its
predecessor's cell while both live) and travel in the worker's HELLO.
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


TABLE: BusyTable | None = None  # set in the master when --reactors > 1, inherited by all


def create() -> BusyTable:
    global TABLE
    TABLE = BusyTable()
    return TABLE
