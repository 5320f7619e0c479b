"""ipc/busy.py: cells of the shared busy table (--reactors N)."""

from __future__ import annotations

import fcntl
import os
import signal
import time

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


def _send(dispatcher: Dispatcher, slot: WorkerSlot) -> None:
    """What Reactor._send does to the slot after a pick."""
    slot.inflight += 1
    dispatcher.sent(slot)


def test_two_reactors_never_give_one_worker_more_than_its_capacity() -> None:
    """The worker has not yet received (nor published) any request: reservations count."""
    table = BusyTable(cells=4, reactors=2)
    first, second = Dispatcher("idle", table, 0), Dispatcher("idle", table, 1)
    mine, theirs = WorkerSlot(0, 1, 101, 3), WorkerSlot(0, 1, 101, 3)  # one worker, two views
    first.add(mine)
    second.add(theirs)
    for _ in range(2):
        picked = first.pick(session=1)
        assert picked is mine
        _send(first, picked)
    assert table.counts[0] == 0  # the worker has published nothing yet
    picked = second.pick(session=2)
    assert picked is theirs
    _send(second, picked)
    assert second.pick(session=3) is None  # 3 of 3 reserved: reactor 1 must not add a fourth
    assert first.pick(session=4) is None
    assert not first.room(mine)
    mine.inflight -= 1  # reactor 0's first answer
    first.sent(mine)
    assert second.room(theirs)  # the freed slot is reserved by exactly one reactor
    assert not first.room(mine)


def test_an_unused_reservation_is_given_back() -> None:
    table = BusyTable(cells=4, reactors=2)
    first, second = Dispatcher("key:X", table, 0), Dispatcher("key:X", table, 1)
    mine, theirs = WorkerSlot(0, 1, 101, 1), WorkerSlot(0, 1, 101, 1)
    first.add(mine)
    second.add(theirs)
    assert first.room(mine)
    assert not second.room(theirs)
    first.unclaim(mine)  # the waiting request's client had left: nothing was sent
    assert second.room(theirs)


def test_a_reactor_killed_holding_a_cell_lock_does_not_block_the_others() -> None:
    """The lock is a POSIX record lock: the kernel drops it with its holder."""
    table = BusyTable(cells=4, reactors=2)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a reactor that takes cell 2's lock and is killed holding it
        fcntl.lockf(table.lock_fd, fcntl.LOCK_EX, 1, 2)
        os.write(ready_w, b"x")
        time.sleep(60)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
    assert table.claim(0, 2, 0, 1)  # would block forever if the lock had outlived its holder


def test_a_respawned_reactor_starts_with_an_empty_row() -> None:
    table = BusyTable(cells=4, reactors=2)
    assert table.claim(1, 0, 0, 1)
    assert not table.claim(0, 0, 0, 1)
    table.clear(1)  # reactor 1 died and is respawned: its reservations went with it
    assert table.claim(0, 0, 0, 1)
