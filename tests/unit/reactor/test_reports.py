"""The reactor and base-mode workers only report; the supervision policy decides.

A real Reactor (no loop started) and real worker links over fake transports:
the reactor sends ``Served`` once a worker reaches the count the manager told
it to watch, never decides to recycle on its own, and passes a base-mode
worker's timeout on as a graceful ``Timeout``.
"""

from __future__ import annotations

import asyncio

from loadtests.fuzz_targets import FakeTransport
from swserve.base.server import WorkerReport
from swserve.config import Config
from swserve.ipc import codec, control, framing
from swserve.reactor.core import Reactor
from swserve.reactor.worker_link import WorkerLink


def linked(reactor: Reactor, worker_id: int, pid: int) -> WorkerLink:
    link = WorkerLink(reactor)
    link.connection_made(FakeTransport())  # type: ignore[arg-type]
    link.data_received(
        framing.encode(framing.HELLO, 0, 0, 0, codec.encode_hello(worker_id, pid, 0))
    )
    ready = codec.encode_ready(worker_id, pid, 1, "wsgi")
    link.data_received(framing.encode(framing.READY, 0, 0, 0, ready))
    return link


def test_the_reactor_reports_the_watched_count_once_and_decides_nothing() -> None:
    asyncio.run(_the_reactor_reports_the_watched_count_once_and_decides_nothing())


async def _the_reactor_reports_the_watched_count_once_and_decides_nothing() -> None:
    events: list[control.Message] = []
    # --max-requests in the config changes nothing here: the policy decides
    reactor = Reactor(Config(max_requests=1, max_requests_jitter=0), on_event=events.append)
    reactor.watch(4242, 3)  # sent at fork: before the worker is even linked
    link = linked(reactor, 1, 4242)
    assert events == [control.Ready(1, 4242, control.Interface.WSGI)]
    slot = link.slot
    assert slot is not None
    for served in (1, 2):
        slot.served = served
        reactor.on_slot_free(slot)
    assert events[1:] == []
    slot.served = 3
    reactor.on_slot_free(slot)
    slot.served = 4
    reactor.on_slot_free(slot)
    assert events[1:] == [control.Served(4242, 3)]


def test_a_watch_that_arrives_late_reports_at_once_and_zero_forgets() -> None:
    asyncio.run(_a_watch_that_arrives_late_reports_at_once_and_zero_forgets())


async def _a_watch_that_arrives_late_reports_at_once_and_zero_forgets() -> None:
    events: list[control.Message] = []
    reactor = Reactor(Config(), on_event=events.append)
    link = linked(reactor, 2, 77)
    assert link.slot is not None
    link.slot.served = 10
    reactor.watch(77, 5)
    assert events[-1] == control.Served(77, 10)
    reactor.watch(88, 5)
    reactor.watch(88, 0)  # it exited before it linked
    assert 88 not in reactor._watches


def test_a_base_mode_workers_counts_and_timeouts_are_passed_on() -> None:
    asyncio.run(_a_base_mode_workers_counts_and_timeouts_are_passed_on())


async def _a_base_mode_workers_counts_and_timeouts_are_passed_on() -> None:
    events: list[control.Message] = []
    reactor = Reactor(Config(mode="base"), on_event=events.append)
    reactor.watch(9, 4)
    link = linked(reactor, 1, 9)
    del events[:]
    link.data_received(framing.encode(framing.SERVED, 0, 0, 0, codec.encode_served(2)))
    assert events == []
    link.data_received(
        framing.encode(framing.SERVED, framing.SERVED_TIMED_OUT, 0, 0, codec.encode_served(3))
    )
    assert events == [control.Timeout(9, graceful=True)]
    link.data_received(
        framing.encode(framing.SERVED, framing.SERVED_WATCHED, 0, 0, codec.encode_served(4))
    )
    assert events[1:] == [control.Served(9, 4)]


class FakeChannel:
    def __init__(self) -> None:
        self.frames: list[tuple[int, int, int]] = []

    def write(self, data: bytes) -> None:
        for kind, flags, _, _, payload in framing.FrameDecoder().feed(data):
            self.frames.append((kind, flags, codec.decode_served(payload)))


def test_a_base_mode_worker_sends_its_count_at_the_one_it_was_given() -> None:
    report = WorkerReport(1, report_at=3)
    channel = FakeChannel()
    report.channel = channel  # type: ignore[assignment]
    for count in (1, 2):
        report.served(count)
    assert channel.frames == []  # otherwise only once a second (tick)
    report.served(3)
    report.served(4)
    assert channel.frames == [(framing.SERVED, framing.SERVED_WATCHED, 3)]
    report.timed_out()
    report.timed_out()
    assert channel.frames[1:] == [(framing.SERVED, framing.SERVED_TIMED_OUT, 3)]
    report.on_event(control.Idle())
    assert report.idle.is_set()


def test_without_a_count_a_base_mode_worker_never_asks() -> None:
    report = WorkerReport(1)
    channel = FakeChannel()
    report.channel = channel  # type: ignore[assignment]
    for count in range(1, 10_000, 97):
        report.served(count)
    assert channel.frames == []
