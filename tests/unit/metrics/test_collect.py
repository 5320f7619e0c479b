"""The master's part of the snapshot and /readyz, from a fake master over real slots and Stats."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from swserve.master.stats import Stats
from swserve.metrics.collect import collect, readiness
from swserve.metrics.exposition import CONN_OPEN, IN_FLIGHT, REQUESTS, RESTARTS, key
from swserve.metrics.requests import RemoteSources, RequestMetrics, WebSocketMetrics
from swserve.reactor.dispatcher import WorkerSlot


@dataclass
class FakeLink:
    slot: WorkerSlot | None


@dataclass
class FakeConn:
    current: object | None


@dataclass
class FakeWs:
    """The reactor's WebSocket table, as the collector reads it."""

    by_id: dict[int, object] = field(default_factory=dict)
    metrics: WebSocketMetrics | None = field(default_factory=WebSocketMetrics)

    def __len__(self) -> int:
        return len(self.by_id)


@dataclass
class FakeReactor:
    links: dict[int, FakeLink] = field(default_factory=dict)
    ws: FakeWs = field(default_factory=FakeWs)
    sessions: dict[int, object] = field(default_factory=dict)
    queue: collections.deque[FakeConn] = field(default_factory=collections.deque)
    metrics: RequestMetrics | None = field(default_factory=RequestMetrics)
    remote: RemoteSources = field(default_factory=RemoteSources)

    def in_flight(self) -> int:
        return sum(link.slot.inflight for link in self.links.values() if link.slot)


@dataclass
class FakeMaster:
    reactor: Any = field(default_factory=FakeReactor)
    stats: Stats = field(default_factory=Stats)
    announced: bool = True
    stopping: bool = False
    tasks: Any = None
    user_process_restarts: int = 0


def with_workers(*inflight: int, retiring: int = 0) -> FakeMaster:
    master = FakeMaster()
    for i, n in enumerate(inflight):
        slot = WorkerSlot(key=i, worker_id=i + 1, pid=100 + i, capacity=1)
        slot.inflight = n
        slot.retiring = i < retiring
        master.reactor.links[i] = FakeLink(slot)
    master.reactor.links[99] = FakeLink(None)  # connected, still loading the app
    return master


def test_readiness() -> None:
    assert readiness(with_workers(0, 0)) == (True, "ready")
    starting = with_workers(0)
    starting.announced = False
    assert readiness(starting) == (False, "starting")
    draining = with_workers(1)
    draining.stopping = True
    assert readiness(draining) == (False, "draining")
    assert readiness(with_workers(0, retiring=1)) == (False, "no worker is ready")
    assert readiness(FakeMaster()) == (False, "no worker is ready")


def test_workers_and_request_gauges() -> None:
    master = with_workers(1, 0, 1, retiring=1)
    master.reactor.sessions = {1: object(), 2: object(), 3: object()}
    master.reactor.queue.extend([FakeConn(object()), FakeConn(None)])  # one client left
    snap = collect(master)
    assert snap["swserve_workers_alive"] == 2
    assert snap["swserve_workers_busy"] == 1
    assert snap["swserve_workers_retiring"] == 1
    assert snap["swserve_requests_in_flight"] == 2
    assert snap["swserve_requests_queued"] == 1
    assert snap["swserve_connections_open"] == 3
    assert snap["swserve_ready"] == 1


def test_restarts_by_reason() -> None:
    master = with_workers(0, 0)
    stats = master.stats
    for pid in (1, 2, 3, 4, 5, 6):
        stats.worker_ready(1, pid)
    stats.worker_retired(1, "reload")
    stats.worker_retired(2, "reload-sync")
    stats.worker_retired(3, "scale-down")  # not replaced: not a restart
    stats.worker_retired(4, "max-requests")
    stats.worker_timed_out(5)
    stats.worker_timed_out(5)  # the same worker once
    for pid in (1, 2, 3, 4, 5):
        stats.worker_exited(pid, stopping=False)  # all expected: no crash
    stats.worker_exited(6, stopping=False)  # nobody asked: a crash
    stats.worker_exited(7, stopping=False)  # never ready (a failed boot): not a crash
    stats.reloads += 1
    snap = collect(master)
    restarts = {k: v for k, v in snap.items() if k.startswith(RESTARTS)}
    assert restarts == {
        key(RESTARTS, "reload"): 2,
        key(RESTARTS, "max-requests"): 1,
        key(RESTARTS, "timeout"): 1,
        key(RESTARTS, "crash"): 1,
    }
    assert snap["swserve_reloads_total"] == 1
    assert stats.exits == 7


def test_exits_during_shutdown_are_not_crashes() -> None:
    stats = Stats()
    stats.worker_ready(1, 10)
    stats.worker_exited(10, stopping=True)
    assert stats.crashes == 0


def test_request_counters_are_the_reactors() -> None:
    master = with_workers(0)
    master.reactor.metrics.observe(b"GET", 200, 0.01, 0, 5)
    snap = collect(master)
    assert snap[key("swserve_requests_total", "GET", "2xx")] == 1
    master.reactor.metrics = None  # --metrics-bind unset: the reactor keeps no counters
    assert "swserve_requests_total" not in "".join(collect(master))


def test_base_mode_workers_counts_are_summed_and_outlive_them() -> None:
    """Base-mode workers send snapshots; a gone worker's counters stay, its gauges go."""
    master = FakeMaster()
    one, two = RequestMetrics(), RequestMetrics()
    one.observe(b"GET", 200, 0.01, 0, 5)
    two.observe(b"POST", 201, 0.02, 3, 0)
    two.observe(b"GET", 404, 0.02, 0, 0)
    master.reactor.remote.update(1, {**one.snapshot(), CONN_OPEN: 4, IN_FLIGHT: 1})
    master.reactor.remote.update(2, {**two.snapshot(), CONN_OPEN: 2})
    snap = collect(master)
    assert snap[key(REQUESTS, "GET", "2xx")] == 1
    assert snap[key(REQUESTS, "POST", "2xx")] == 1
    assert snap[key(REQUESTS, "GET", "4xx")] == 1
    assert snap[CONN_OPEN] == 6
    assert snap[IN_FLIGHT] == 1
    master.reactor.remote.lost(1)  # recycled: its requests still happened
    after = collect(master)
    assert after[key(REQUESTS, "GET", "2xx")] == 1
    assert after[CONN_OPEN] == 2
    assert after[IN_FLIGHT] == 0


def test_websocket_sessions_and_messages() -> None:
    master = FakeMaster()
    ws = master.reactor.ws
    ws.by_id = {1: object(), 2: object()}
    metrics = ws.metrics
    metrics.opened = 5
    metrics.messages_in, metrics.bytes_in = 7, 700
    metrics.messages_out, metrics.bytes_out = 3, 30
    for code in (1000, 1000, 1012, 4001, 4999, 2999):
        metrics.closed(code)
    snap = collect(master)
    assert snap["swserve_websocket_sessions_open"] == 2
    assert snap["swserve_websocket_sessions_opened_total"] == 5
    assert snap["swserve_websocket_messages_total|in"] == 7
    assert snap["swserve_websocket_message_bytes_total|out"] == 30
    closed = {
        k.split("|")[1]: v
        for k, v in snap.items()
        if k.startswith("swserve_websocket_sessions_closed")
    }
    assert closed == {"1000": 2, "1012": 1, "4xxx": 2, "other": 1}
