from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from swserve.ipc.busy import BusyTable
from swserve.reactor.dispatcher import Dispatcher, WorkerSlot


def make(mode: str, capacities: list[int]) -> tuple[Dispatcher, list[WorkerSlot]]:
    d = Dispatcher(mode)
    slots = [
        WorkerSlot(key=i + 10, worker_id=i + 1, pid=100 + i, capacity=c)
        for i, c in enumerate(capacities)
    ]
    for s in slots:
        d.add(s)
    return d, slots


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown dispatch mode"):
        Dispatcher("random")


def test_no_workers_means_wait() -> None:
    for mode in ("idle", "round-robin", "fd"):
        assert Dispatcher(mode).pick(1) is None


def test_idle_goes_round_to_idle_workers() -> None:
    d, (a, b, c) = make("idle", [1, 1, 1])
    picks = []
    for _ in range(3):
        s = d.pick(0)
        assert s is not None
        s.inflight += 1
        picks.append(s)
    assert picks == [a, b, c]
    assert d.pick(0) is None  # all busy: the request waits in the reactor
    b.inflight = 0
    assert d.pick(0) is b


def test_idle_skips_busy_worker_even_if_its_turn() -> None:
    d, (a, b) = make("idle", [1, 1])
    a.inflight = 1
    assert d.pick(0) is b


def test_idle_falls_back_to_least_loaded_with_room() -> None:
    d, (a, b) = make("idle", [100, 100])
    a.inflight, b.inflight = 5, 3
    assert d.pick(0) is b
    b.inflight = 100
    assert d.pick(0) is a


def test_round_robin_ignores_load() -> None:
    d, slots = make("round-robin", [1, 1, 1])
    slots[0].inflight = 1
    assert [d.pick(0) for _ in range(4)] == [slots[0], slots[1], slots[2], slots[0]]


def test_fd_pins_a_session_to_a_worker() -> None:
    d, _ = make("fd", [1, 1, 1])
    for session in range(20):
        first = d.pick(session)
        assert all(d.pick(session) is first for _ in range(3))


def test_remove() -> None:
    d, (a, b) = make("idle", [1, 1])
    d.remove(a)
    d.remove(a)  # removing twice is harmless
    assert d.slots == [b]


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 4)), min_size=1, max_size=6))
def test_idle_never_exceeds_capacity(spec: list[tuple[int, int]]) -> None:
    d, slots = make("idle", [c for c, _ in spec])
    for s, (c, load) in zip(slots, spec, strict=True):
        s.inflight = min(load, c)
    picked = d.pick(0)
    if picked is None:
        assert all(s.inflight >= s.capacity for s in slots)
        assert not d.has_room()
    else:
        assert picked.inflight < picked.capacity
        if any(s.inflight == 0 for s in slots):
            assert picked.inflight == 0


@given(st.integers(1, 10_000), st.integers(0, 5_000))
def test_each_worker_limit_is_n_plus_jitter(n: int, jitter: int) -> None:
    from swserve.config import Config
    from swserve.reactor.core import Reactor

    reactor = Reactor(Config(max_requests=n, max_requests_jitter=jitter), on_event=lambda *a: None)
    limits = {reactor.request_limit() for _ in range(20)}
    assert all(n <= limit <= n + jitter for limit in limits)
    assert Reactor(Config(), on_event=lambda *a: None).request_limit() == 0  # off by default


# -- --reactors N: the shared busy table ---------------------------------------------------


def shared(capacities: list[int]) -> tuple[Dispatcher, list[WorkerSlot], BusyTable]:
    table = BusyTable(cells=8)
    d = Dispatcher("idle", table)
    slots = []
    for i, c in enumerate(capacities):
        slot = WorkerSlot(key=i + 10, worker_id=i + 1, pid=100 + i, capacity=c)
        slot.cell = i
        d.add(slot)
        slots.append(slot)
    return d, slots, table


def test_a_worker_busy_with_another_reactors_request_is_not_idle() -> None:
    d, (a, b), table = shared([1, 1])
    table.set(a.cell, 1)  # A runs a request another reactor gave it
    assert d.pick(0) is b
    assert d.pick(0) is b  # still the only idle one, whatever the round order


def test_no_room_anywhere_means_wait_in_the_reactor() -> None:
    d, (a, b), table = shared([1, 1])
    table.set(a.cell, 1)
    table.set(b.cell, 1)
    assert d.pick(0) is None  # not pushed into a busy worker's pipe


def test_least_loaded_counts_every_reactors_work() -> None:
    d, (a, b), table = shared([10, 10])
    table.set(a.cell, 7)
    table.set(b.cell, 2)
    b.inflight = 1  # ours, already published in its count
    assert d.pick(0) is b


def test_table_counts_requests_and_resets_for_a_new_worker() -> None:
    table = BusyTable(cells=4)
    table.set(2, 3)
    table.done(2, 2)
    table.done(2, 1)
    assert (table.counts[2], table.served[2]) == (1, 2)
    table.reset(2)
    assert (table.counts[2], table.served[2]) == (0, 0)
