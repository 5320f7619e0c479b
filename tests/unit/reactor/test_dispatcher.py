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
    else:
        assert picked.inflight < picked.capacity
        if any(s.inflight == 0 for s in slots):
            assert picked.inflight == 0


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


# -- client affinity: --dispatch ip / key:... ------------------------------------------------

from swserve.reactor.dispatcher import Waiting, rendezvous  # noqa: E402
from swserve.settings.dispatch import Spec, parse  # noqa: E402


def test_parse_the_affinity_modes() -> None:
    assert parse("ip") == Spec("ip")
    assert parse("key:X-Tenant") == Spec("key", "x-tenant")
    assert parse("key:cookie:sessionid") == Spec("key", "cookie", "sessionid")
    assert parse("key:Cookie:sid") == Spec("key", "cookie", "sid")
    assert parse("fd") == Spec("fd")
    for bad in ("key", "key:", "key:cookie:", "key:a b", "key:x:y", "key:cookie:a;b", "ipv4", ""):
        with pytest.raises(ValueError, match="expected idle, round-robin, fd, ip"):
            parse(bad)


def affinity(mode: str, n: int, capacity: int = 1) -> tuple[Dispatcher, list[WorkerSlot]]:
    return make(mode, [capacity] * n)


keys_st = st.lists(st.binary(min_size=1, max_size=24), min_size=1, max_size=60, unique=True)


@given(keys_st, st.integers(1, 40))
def test_rendezvous_is_stable_and_owned_by_a_live_slot(keys: list[bytes], n: int) -> None:
    ids = tuple(range(1, n + 1))
    for key in keys:
        owner = rendezvous(key, ids)
        assert owner in ids
        assert rendezvous(key, ids) == owner
        assert rendezvous(key, tuple(reversed(ids))) == owner  # the order given is irrelevant


@given(keys_st, st.integers(2, 24), st.data())
def test_removing_a_slot_moves_only_its_keys(
    keys: list[bytes], n: int, data: st.DataObject
) -> None:
    ids = tuple(range(1, n + 1))
    gone = data.draw(st.sampled_from(ids))
    left = tuple(i for i in ids if i != gone)
    for key in keys:
        before = rendezvous(key, ids)
        after = rendezvous(key, left)
        if before != gone:
            assert after == before  # nobody else's keys move
        else:
            assert after != gone


@given(keys_st, st.integers(1, 24))
def test_adding_a_slot_moves_keys_only_to_it(keys: list[bytes], n: int) -> None:
    ids = tuple(range(1, n + 1))
    grown = (*ids, n + 1)
    for key in keys:
        after = rendezvous(key, grown)
        assert after in (rendezvous(key, ids), n + 1)


def test_rendezvous_spreads_keys_evenly() -> None:
    for n in (2, 3, 4, 7, 17, 33):  # 17, 33: slots beyond the first digest's 16
        ids = tuple(range(1, n + 1))
        counts = dict.fromkeys(ids, 0)
        total = 2000 * n
        for i in range(total):
            counts[rendezvous(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}".encode(), ids)] += 1
        # each slot's share within 15% of the fair share (binomial sd is ~2% here)
        assert all(abs(c - total / n) < 0.15 * total / n for c in counts.values()), counts


def test_owner_is_the_same_in_every_dispatcher() -> None:
    # --reactors N: each reactor has its own Dispatcher; they must agree on every key
    a, _ = affinity("ip", 4)
    b, _ = affinity("ip", 4)
    for i in range(200):
        key = f"192.0.2.{i}".encode()
        owner_a, owner_b = a.owner(key), b.owner(key)
        assert owner_a is not None
        assert owner_b is not None
        assert owner_a.worker_id == owner_b.worker_id


def test_a_replacement_takes_over_its_slots_keys() -> None:
    d, slots = affinity("ip", 3)
    keys = [f"198.51.100.{i}".encode() for i in range(60)]
    before = {k: d.owner(k) for k in keys}
    old = slots[1]
    new = WorkerSlot(key=99, worker_id=old.worker_id, pid=999, capacity=1)
    d.add(new)  # READY: the replacement, in the same slot
    d.remove(old)  # then the old one retires
    for k in keys:
        owner = d.owner(k)
        assert owner is not None
        expected = before[k]
        assert expected is not None
        assert owner.worker_id == expected.worker_id  # nothing moved
        assert owner is (new if expected is old else expected)


def test_while_both_are_ready_the_newest_worker_of_a_slot_owns_its_keys() -> None:
    d, slots = affinity("ip", 2)
    new = WorkerSlot(key=99, worker_id=slots[0].worker_id, pid=999, capacity=1)
    d.add(new)
    owned = [k for k in (f"k{i}".encode() for i in range(50)) if d.owner(k) in (new, slots[0])]
    assert owned
    assert all(d.owner(k) is new for k in owned)


def test_a_dead_workers_keys_move_to_the_survivors_and_come_back() -> None:
    d, slots = affinity("key:x-tenant", 3)
    keys = [f"tenant-{i}".encode() for i in range(90)]
    before = {k: d.owner(k) for k in keys}
    d.remove(slots[0])
    for k in keys:
        assert d.owner(k) is not slots[0]
        if before[k] is not slots[0]:
            assert d.owner(k) is before[k]
    d.add(slots[0])
    assert {k: d.owner(k) for k in keys} == before


def test_owner_cache_is_bounded() -> None:
    d, _ = affinity("key:x-a", 2)
    for i in range(10_000):
        d.owner(str(i).encode())
    assert len(d._cache) <= 4096


def test_no_worker_means_no_owner() -> None:
    assert Dispatcher("ip").owner(b"127.0.0.2") is None


def test_requests_without_a_key_go_as_idle() -> None:
    d, (a, b) = affinity("ip", 2)
    a.inflight = 1
    assert d.pick(0) is b  # pick() is the fallback: the idle rule
    b.inflight = 1
    assert d.pick(0) is None


def test_room_counts_every_reactors_work() -> None:
    table = BusyTable(cells=8)
    d = Dispatcher("ip", table)
    slot = WorkerSlot(key=1, worker_id=1, pid=1, capacity=2)
    slot.cell = 3
    d.add(slot)
    assert d.room(slot)
    table.set(3, 2)
    assert not d.room(slot)


# -- Waiting: per-slot queues -------------------------------------------------------------


class Req:
    def __init__(self, name: str, session: int = 0) -> None:
        self.name = name
        self.session = session
        self.alive = True

    def __repr__(self) -> str:
        return self.name


def drain(w: Waiting[Req]) -> list[tuple[str, int]]:
    out = []
    for req, slot in w.ready(lambda r: r.alive, lambda r: r.session):
        slot.inflight += 1  # what the reactor's _send does before asking for the next
        out.append((req.name, slot.worker_id))
    return out


def key_of(d: Dispatcher, wid: int) -> bytes:
    return next(k for k in (f"c{i}".encode() for i in range(1000)) if d.owner(k).worker_id == wid)  # type: ignore[union-attr]


def test_a_request_waiting_for_a_busy_worker_does_not_block_an_idle_one() -> None:
    d, (a, b) = affinity("ip", 2)
    w: Waiting[Req] = Waiting(d)
    a.inflight = 1
    w.pin(Req("for-a"), key_of(d, 1), a)
    assert w.waits_for(a)
    assert not w.waits_for(b)
    w.append(Req("any"))  # no key: idle
    assert drain(w) == [("any", 2)]  # B takes it; for-a keeps waiting for A
    assert len(w) == 1
    a.inflight = 0
    assert drain(w) == [("for-a", 1)]
    assert len(w) == 0
    assert not w


def test_pinned_requests_go_in_order_to_their_worker_only() -> None:
    d, (a, _b) = affinity("ip", 2, capacity=1)
    w: Waiting[Req] = Waiting(d)
    a.inflight = 1
    ka = key_of(d, 1)
    for i in range(3):
        w.pin(Req(f"a{i}"), ka, a)
    assert drain(w) == []  # B is idle but these wait for A
    a.inflight = 0
    assert drain(w) == [("a0", 1)]
    a.inflight = 0
    assert drain(w) == [("a1", 1)]
    assert [r.name for r in w] == ["a2"]


def test_waiting_requests_follow_their_key_when_the_worker_leaves() -> None:
    d, (a, b, c) = affinity("ip", 3)
    w: Waiting[Req] = Waiting(d)
    for s in (a, b, c):
        s.inflight = 1
    ka = key_of(d, 1)
    w.pin(Req("for-a"), ka, a)
    d.remove(a)  # A dies (or retires) with a request waiting for it
    expected = d.owner(ka)
    assert expected is not None
    assert expected is not a
    expected.inflight = 0
    assert drain(w) == [("for-a", expected.worker_id)]


def test_requests_queued_before_any_worker_is_ready_find_their_owner() -> None:
    d = Dispatcher("key:x-t")
    w: Waiting[Req] = Waiting(d)
    w.pin(Req("early"), b"t1", d.owner(b"t1"))
    assert drain(w) == []
    slots = [WorkerSlot(key=i, worker_id=i, pid=i, capacity=1) for i in (1, 2)]
    for s in slots:
        d.add(s)
    owner = d.owner(b"t1")
    assert owner is not None
    assert drain(w) == [("early", owner.worker_id)]


def test_removed_and_departed_requests_leave_the_count() -> None:
    d, (a,) = affinity("ip", 1)
    w: Waiting[Req] = Waiting(d)
    a.inflight = 1
    r1, r2, r3 = Req("r1"), Req("r2"), Req("r3")
    w.pin(r1, b"x", a)
    w.pin(r2, b"x", a)
    w.append(r3)
    assert len(w) == 3
    w.remove(r2)
    w.remove(r3)
    w.remove(Req("never-queued"))
    assert len(w) == 1
    r1.alive = False  # its client left
    a.inflight = 0
    assert drain(w) == []
    assert len(w) == 0
    assert w.pinned == {}


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=40),
    st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_waiting_never_overfills_and_keeps_each_workers_order(
    arrivals: list[tuple[bool, int]], loads: list[int]
) -> None:
    d, slots = affinity("ip", 3, capacity=3)
    for s, load in zip(slots, loads, strict=True):
        s.inflight = load
    w: Waiting[Req] = Waiting(d)
    keys = [f"k{i}".encode() for i in range(6)]
    for i, (keyed, k) in enumerate(arrivals):
        if keyed:
            w.pin(Req(f"{i}:{k}"), keys[k], d.owner(keys[k]))
        else:
            w.append(Req(f"{i}:-"))
    sent = drain(w)
    assert all(s.inflight <= s.capacity for s in slots)
    for name, wid in sent:
        tag = name.split(":")[1]
        if tag != "-":
            assert d.owner(keys[int(tag)]).worker_id == wid  # type: ignore[union-attr]
    for wid in (1, 2, 3):
        order = [int(n.split(":")[0]) for n, w_ in sent if w_ == wid and not n.endswith("-")]
        assert order == sorted(order)
    # whatever still waits could not go: its worker (or, for the shared, every worker) is full
    for req in w:
        tag = req.name.split(":")[1]
        if tag == "-":
            assert d.pick(0) is None
        else:
            owner = d.owner(keys[int(tag)])
            assert owner is not None
            assert not d.room(owner)
