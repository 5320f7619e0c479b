"""ipc/busy.py: cells of the shared busy table (--reactors N)."""

from __future__ import annotations

import pytest

from swserve.ipc.busy import BusyTable, next_cell
from swserve.reactor.dispatcher import Dispatcher, WorkerSlot


def test_a_dead_workers_cell_is_not_handed_straight_to_its_replacement() -> None:
    # worker in cell 0 died; cell 1 is alive: the replacement gets cell 2, not cell 0
    assert next_cell({1}, last=1) == 2
    assert next_cell({1, 2}, last=2, cells=4) == 3
    assert next_cell({1, 2, 3}, last=3, cells=4) == 0  # wraps only when it must


def test_next_cell_when_every_cell_is_live() -> None:
    with pytest.raises(RuntimeError):
        next_cell({0, 1}, last=1, cells=2)


def test_a_reactor_that_has_not_seen_a_worker_die_does_not_pick_it() -> None:
    """The manager marks a dead worker's cell full when it reaps it."""
    table = BusyTable(cells=4)
    dispatcher = Dispatcher("idle", busy=table)
    dead = WorkerSlot(0, 1, 101, 1)
    dead.cell = 0
    alive = WorkerSlot(1, 2, 102, 1)
    alive.cell = 1
    table.set(1, 1)  # the live worker is busy with another reactor's request
    dispatcher.add(dead)
    dispatcher.add(alive)
    table.dead(0)
    assert dispatcher.pick(session=7) is None  # wait in the queue rather than go to the dead one
