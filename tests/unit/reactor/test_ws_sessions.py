"""The reactor's WebSocket session table with fakes: a fake transport, a fake peer
(the worker), a fake clock; the sweep is called by hand.  Pings and their timeout,
the reload drain (1012), the shutdown drain (1001), a dead worker (1011 at once),
close deadlines, back-pressure and the per-worker count."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.protocol import OPEN, Protocol, Side

from swserve.config import Config
from swserve.metrics.requests import WebSocketMetrics
from swserve.protocol.request import Request
from swserve.protocol.websocket import WebSocketCore
from swserve.reactor.ws_conn import WsConnection, WsSessions


@dataclass
class FakeTransport:
    written: list[bytes] = field(default_factory=list)
    closed: bool = False
    aborted: bool = False
    reading: bool = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close_codes(self) -> list[int]:
        """The close frames written (server frames are never masked)."""
        return [int(struct.unpack("!H", d[2:4])[0]) for d in self.written if d[:1] == b"\x88"]

    def opcodes(self) -> list[int]:
        return [d[0] & 0x0F for d in self.written]


@dataclass
class FakeReactor:
    access_log: Any = None


@dataclass
class FakeConn:
    session: int
    transport: FakeTransport = field(default_factory=FakeTransport)
    seq: int = 1
    slot: Any = None
    reactor: FakeReactor = field(default_factory=FakeReactor)
    prefix: list[bytes] = field(default_factory=lambda: [b"http", b"127.0.0.1"])
    current: Request = field(default_factory=Request)


@dataclass
class FakePeer:
    key: int
    messages: list[tuple[int, bool, bytes]] = field(default_factory=list)
    closed: list[tuple[int, int, str]] = field(default_factory=list)
    flows: list[tuple[int, int]] = field(default_factory=list)

    def ws_message(self, ws: WsConnection, text: bool, data: bytes) -> None:
        self.messages.append((ws.session, text, data))

    def ws_closed(self, ws: WsConnection, code: int, reason: str) -> None:
        self.closed.append((ws.session, code, reason))

    def ws_flow(self, ws: WsConnection, kind: int) -> None:
        self.flows.append((ws.session, kind))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Timer:
    """The table's sweep timer, never fired: the tests call the sweep themselves."""

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay

    def cancel(self) -> None:
        pass


def make(config: Config, ended: list[int]) -> tuple[WsSessions, Clock]:
    table = WsSessions(config, ended.append)
    clock = Clock()
    table.clock = clock
    table.call_later = Timer
    table.metrics = WebSocketMetrics()
    return table, clock


def open_session(table: WsSessions, session: int, peer: FakePeer) -> tuple[WsConnection, FakeConn]:
    conn = FakeConn(session)
    ws = WsConnection(conn, conn.current, WebSocketCore(1 << 20), peer, table)  # type: ignore[arg-type]
    ws.opened_at = table.clock()
    table.add(ws)
    return ws, conn


def client_bytes(action: str, *args: Any) -> bytes:
    proto = Protocol(Side.CLIENT, state=OPEN)
    getattr(proto, action)(*args)
    return b"".join(proto.data_to_send())


def test_messages_reach_the_peer_and_are_counted() -> None:
    table, _ = make(Config(), [])
    peer = FakePeer(7)
    ws, conn = open_session(table, 1, peer)
    ws.data_received(client_bytes("send_text", b"hi"))
    ws.send_message(False, b"out")
    assert peer.messages == [(1, True, b"hi")]
    assert conn.transport.written == [b"\x82\x03out"]
    assert table.metrics is not None
    assert (table.metrics.messages_in, table.metrics.bytes_out) == (1, 3)
    assert table.count(7) == 1
    assert table.get(1) is ws


def test_pings_then_1011_without_a_pong() -> None:
    config = Config(ws_ping_interval=20, ws_ping_timeout=10)
    table, clock = make(config, [])
    peer = FakePeer(7)
    _, conn = open_session(table, 1, peer)
    clock.now += 19
    table._sweep()
    assert conn.transport.opcodes() == []
    clock.now += 1
    table._sweep()
    assert conn.transport.opcodes() == [0x9]
    clock.now += 9.9
    table._sweep()
    assert conn.transport.close_codes() == []
    clock.now += 0.1
    table._sweep()
    assert conn.transport.close_codes() == [1011]
    assert peer.closed == [(1, 1011, "")]


def test_a_pong_resets_the_ping() -> None:
    table, clock = make(Config(ws_ping_interval=20, ws_ping_timeout=10), [])
    ws, conn = open_session(table, 1, FakePeer(7))
    clock.now += 20
    table._sweep()
    ping = conn.transport.written[-1]
    client = Protocol(Side.CLIENT, state=OPEN)
    client.receive_data(ping)
    ws.data_received(b"".join(client.data_to_send()))  # its automatic pong
    clock.now += 15
    table._sweep()
    assert conn.transport.close_codes() == []
    clock.now += 5
    table._sweep()
    assert conn.transport.opcodes() == [0x9, 0x9]


def test_a_retiring_workers_sessions_drain_then_get_1012() -> None:
    ended: list[int] = []
    table, clock = make(Config(ws_drain_timeout=5, ws_ping_interval=0), ended)
    old, new = FakePeer(1), FakePeer(2)
    ws_old, conn_old = open_session(table, 1, old)
    _, conn_new = open_session(table, 2, new)
    table.retire(1)
    clock.now += 4.9
    table._sweep()
    assert conn_old.transport.close_codes() == []
    clock.now += 0.1
    table._sweep()
    assert conn_old.transport.close_codes() == [1012]
    assert old.closed == [(1, 1012, "")]
    assert conn_new.transport.close_codes() == []  # the new worker's session goes on
    ws_old.data_received(client_bytes("send_close", 1012, ""))  # the client answers
    assert conn_old.transport.closed
    ws_old.connection_lost()
    assert ended == [1]  # the worker may get its STOP now
    assert table.count(1) == 0
    assert len(table) == 1


def test_a_client_that_never_answers_the_close_is_cut() -> None:
    table, clock = make(Config(ws_drain_timeout=0, ws_ping_interval=0), [])
    _, conn = open_session(table, 1, FakePeer(1))
    table.retire(1)  # drain 0: at once
    assert conn.transport.close_codes() == [1012]
    clock.now += 4.9
    table._sweep()
    assert not conn.transport.aborted
    clock.now += 0.2
    table._sweep()
    assert conn.transport.aborted


def test_shutdown_drains_then_1001() -> None:
    table, clock = make(Config(ws_drain_timeout=3, ws_ping_interval=0), [])
    conns = [open_session(table, i, FakePeer(i % 2))[1] for i in range(1, 5)]
    table.drain()
    clock.now += 3
    table._sweep()
    assert [c.transport.close_codes() for c in conns] == [[1001]] * 4


def test_a_dead_worker_gets_no_message_and_its_sessions_1011_at_once() -> None:
    table, _ = make(Config(), [])
    dead, alive = FakePeer(1), FakePeer(2)
    _, conn_dead = open_session(table, 1, dead)
    _, conn_alive = open_session(table, 2, alive)
    table.peer_lost(1)
    assert conn_dead.transport.close_codes() == [1011]
    assert dead.closed == []  # nobody to tell
    assert conn_alive.transport.close_codes() == []


def test_the_peers_flow_pauses_reading_and_the_clients_flow_reaches_the_peer() -> None:
    table, _ = make(Config(), [])
    peer = FakePeer(1)
    ws, conn = open_session(table, 1, peer)
    states = []
    for full in (True, False):
        ws.hold(full)
        states.append(conn.transport.reading)
    assert states == [False, True]
    ws.pause_writing()
    ws.resume_writing()
    assert peer.flows == [(1, 12), (1, 13)]  # BUFFER_FULL, BUFFER_EMPTY


def test_a_bad_frame_gets_its_code_and_the_peer_hears() -> None:
    table, _ = make(Config(), [])
    peer = FakePeer(1)
    ws, conn = open_session(table, 1, peer)
    ws.data_received(b"\x81\x02hi")  # unmasked
    assert conn.transport.close_codes() == [1002]
    assert conn.transport.closed  # a server ends the TCP stream after a failure
    assert [code for _, code, _ in peer.closed] == [1002]
    ws.connection_lost()
    assert table.metrics is not None
    assert table.metrics.closed_by_code == {"1002": 1}
