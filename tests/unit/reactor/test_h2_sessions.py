"""HTTP/2 in the reactor with fakes: a real Reactor (no loop started), a fake client
transport, fake worker links; h2 as the client.  Each stream is a session of its own,
routed and dropped like an HTTP/1.1 request; flow control reaches only its worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes

from loadtests.fuzz_targets import FakeTransport
from swserve.config import Config
from swserve.ipc import framing
from swserve.reactor.core import Reactor
from swserve.reactor.dispatcher import WorkerSlot
from swserve.reactor.h2_conn import H2Stream
from swserve.reactor.http_conn import HttpConnection

REQ = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")]


@dataclass
class FakeLink:
    """A worker link: what the reactor sends its worker."""

    slot: WorkerSlot
    requests: list[int] = field(default_factory=list)  # session ids
    flows: list[tuple[int, int]] = field(default_factory=list)  # (kind, session)
    disconnects: list[int] = field(default_factory=list)

    def send_request(self, conn: HttpConnection) -> None:
        self.requests.append(conn.session)

    def send_flow(self, kind: int, conn: HttpConnection) -> None:
        self.flows.append((kind, conn.session))

    def send_disconnect(self, conn: HttpConnection) -> None:
        self.disconnects.append(conn.session)


def setup(workers: int = 2, **settings: Any) -> tuple[Reactor, list[FakeLink], HttpConnection]:
    reactor = Reactor(Config(http2="on", **settings), on_event=lambda message: None)
    links = []
    for key in range(1, workers + 1):
        slot = WorkerSlot(key, key, 1000 + key, 1)
        link = FakeLink(slot)
        reactor.links[key] = link  # type: ignore[assignment]
        reactor.dispatcher.add(slot)
        links.append(link)
    conn = HttpConnection(reactor)
    conn.connection_made(FakeTransport(("127.0.0.1", 5000)))  # type: ignore[arg-type]
    return reactor, links, conn


class Client:
    def __init__(self, conn: HttpConnection) -> None:
        self.conn = conn
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()

    def send(self) -> list[h2.events.Event]:
        """Our bytes to the server, in 5-byte pieces; then its answer to us."""
        data = self.h2.data_to_send()
        for i in range(0, len(data), 5):
            self.conn.data_received(data[i : i + 5])
        return self.receive()

    def receive(self) -> list[h2.events.Event]:
        transport: FakeTransport = self.conn.transport  # type: ignore[assignment]
        return self.h2.receive_data(transport.take())


def streams(reactor: Reactor) -> list[H2Stream]:
    return [s for s in reactor.sessions.values() if isinstance(s, H2Stream)]


def test_each_stream_is_a_session_of_its_own_on_its_own_worker() -> None:
    reactor, links, conn = setup()
    client = Client(conn)
    for sid in (1, 3, 5):
        client.h2.send_headers(sid, REQ, end_stream=True)
    client.send()
    assert conn.h2 is not None  # the preface switched the connection
    active = streams(reactor)
    assert len({s.session for s in active} | {conn.session}) == 4
    assert reactor.connections() == 1  # streams are not connections (--max-connections)
    assert [len(link.requests) for link in links] == [1, 1]  # one each; the third waits
    assert len(reactor.queue) == 1
    # the first answer frees its worker, which takes the waiting stream
    first = next(s for s in active if s.session == links[0].requests[0])
    first.on_response_start(200, 0, b"content-type: text/plain\r\n", b"hi", True)
    links[0].slot.inflight -= 1
    reactor.on_slot_free(links[0].slot)
    assert len(links[0].requests) == 2
    assert first.session not in reactor.sessions  # a late reply finds no session
    events = client.receive()
    got = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert [(e.stream_id, dict(e.headers)[b":status"]) for e in got] == [(first.stream_id, b"200")]


def test_a_reset_stream_is_dropped_from_the_queue_or_its_worker_told() -> None:
    reactor, links, conn = setup(workers=1)
    client = Client(conn)
    client.h2.send_headers(1, REQ, end_stream=True)
    client.h2.send_headers(3, REQ, end_stream=True)
    client.send()
    assert len(reactor.queue) == 1
    client.h2.reset_stream(3)  # queued: dropped
    client.h2.reset_stream(1)  # with its worker: DISCONNECT
    client.send()
    assert len(reactor.queue) == 0
    assert links[0].disconnects == links[0].requests
    assert streams(reactor) == []
    assert reactor.h2_streams == 0


def test_a_shut_window_holds_back_only_that_streams_worker() -> None:
    reactor, links, conn = setup()
    client = Client(conn)
    client.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    client.h2.send_headers(1, REQ, end_stream=True)
    client.h2.send_headers(3, REQ, end_stream=True)
    client.send()
    one, three = sorted(streams(reactor), key=lambda s: s.stream_id)
    one.on_response_start(200, 0, b"", b"", False)
    one.on_response_body(b"x" * 300_000, False)
    three.on_response_start(200, 0, b"", b"small", True)
    link_one = next(link for link in links if one.session in link.requests)
    assert link_one.flows == [(framing.BUFFER_FULL, one.session)]
    assert all(not link.flows for link in links if link is not link_one)
    client.receive()
    client.h2.increment_flow_control_window(400_000, stream_id=1)
    client.h2.increment_flow_control_window(400_000)
    client.send()
    assert link_one.flows[-1] == (framing.BUFFER_EMPTY, one.session)


def test_a_dead_worker_fails_its_own_streams_only() -> None:
    reactor, _, conn = setup()
    client = Client(conn)
    client.h2.send_headers(1, REQ, end_stream=True)
    client.h2.send_headers(3, REQ, end_stream=True)
    client.send()
    one, three = sorted(streams(reactor), key=lambda s: s.stream_id)
    three.on_response_start(200, 0, b"", b"part", False)
    one.on_worker_lost()  # not started: 502
    three.on_worker_lost()  # started: RST_STREAM INTERNAL_ERROR
    events = client.receive()
    statuses = [
        dict(e.headers)[b":status"] for e in events if isinstance(e, h2.events.ResponseReceived)
    ]
    assert b"502" in statuses
    resets = [(e.stream_id, e.error_code) for e in events if isinstance(e, h2.events.StreamReset)]
    assert resets == [(3, ErrorCodes.INTERNAL_ERROR)]
    assert not conn.transport.is_closing()  # the connection goes on


def test_drain_sends_goaway_and_closes_after_the_last_stream() -> None:
    reactor, _, conn = setup()
    client = Client(conn)
    client.h2.send_headers(1, REQ, end_stream=True)
    client.send()
    (one,) = streams(reactor)
    reactor.drain()
    events = client.receive()
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert [(g.error_code, g.last_stream_id) for g in goaway] == [(ErrorCodes.NO_ERROR, 1)]
    assert reactor.busy()
    assert not conn.transport.is_closing()
    one.on_response_start(204, 0, b"", b"", True)
    assert conn.transport.is_closing()
    assert not reactor.busy()


def test_untrusted_peers_do_not_get_h2c() -> None:
    _, _, conn = setup(forwarded_allow_ips=("10.0.0.1",))
    conn.data_received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert conn.h2 is None
    assert conn.transport.take().startswith(b"HTTP/1.1 ")  # type: ignore[attr-defined]


def test_a_body_that_stops_coming_is_answered_408_after_the_body_timeout() -> None:
    reactor, links, conn = setup(body_timeout=10)
    client = Client(conn)
    client.h2.send_headers(1, [(":method", "POST"), *REQ[1:]])
    client.h2.send_data(1, b"part")
    client.send()
    assert conn.h2 is not None
    conn.h2.sweep(reactor.now + 5)
    assert client.receive() == []
    conn.h2.sweep(reactor.now + 11)
    events = client.receive()
    got = [dict(e.headers)[b":status"] for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert got == [b"408"]
    assert all(not link.requests for link in links)  # never reached a worker
