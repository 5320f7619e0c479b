"""The sans-IO HTTP/2 server core, driven byte by byte with h2 as the client (no sockets)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame
from hypothesis import given, strategies as st

from swserve.protocol.http2 import (
    HIGH,
    PREFACE,
    ConnectionEnded,
    Http2Core,
    Limits,
    RequestReady,
    RequestRejected,
    StreamReset,
    WindowOpened,
)

REQ = [(b":method", b"GET"), (b":path", b"/x?y=1"), (b":scheme", b"https"), (b":authority", b"ex")]


def pair(limits: Limits | None = None) -> tuple[Http2Core, h2.connection.H2Connection]:
    server = Http2Core(limits or Limits())
    server.start()
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    client.receive_data(server.data_to_send())
    return server, client


def feed(server: Http2Core, data: bytes, now: float = 0.0, *, split: int = 0) -> list[object]:
    """Give ``data`` to the server, in pieces of ``split`` bytes if asked."""
    if not split:
        return list(server.receive(data, now))
    out: list[object] = []
    for i in range(0, len(data), split):
        out += server.receive(data[i : i + split], now)
    return out


def client_events(client: h2.connection.H2Connection, server: Http2Core) -> list[h2.events.Event]:
    return client.receive_data(server.data_to_send())


@pytest.mark.parametrize("split", [0, 1, 7])
def test_a_request_with_a_body_arrives_complete(split: int) -> None:
    server, client = pair()
    client.send_headers(1, [*REQ[:1], (b":path", b"/up"), *REQ[2:], (b"x-a", b"1")])
    client.send_data(1, b"hello ")
    client.send_data(1, b"world", end_stream=True)
    events = feed(server, client.data_to_send(), split=split)
    ready = [e for e in events if isinstance(e, RequestReady)]
    assert len(ready) == 1
    req = ready[0].request
    assert (req.method, req.target, req.version) == (b"GET", b"/up", b"2")
    assert req.headers == [(b"host", b"ex"), (b"x-a", b"1")]
    assert bytes(req.body) == b"hello world"


def test_responses_go_out_per_stream_and_end_the_stream() -> None:
    server, client = pair()
    for sid in (1, 3):
        client.send_headers(sid, REQ, end_stream=True)
    events = feed(server, client.data_to_send())
    assert [e.stream_id for e in events if isinstance(e, RequestReady)] == [1, 3]
    server.respond(3, 200, [(b"content-type", b"text/plain")], end=False)
    server.send_body(3, b"three", True, 0.0)
    server.respond(1, 204, [], end=True)
    got = client_events(client, server)
    heads = {e.stream_id: dict(e.headers) for e in got if isinstance(e, h2.events.ResponseReceived)}
    assert heads[3][b":status"] == b"200"
    assert heads[1][b":status"] == b"204"
    data = [e for e in got if isinstance(e, h2.events.DataReceived)]
    assert [(d.stream_id, d.data) for d in data] == [(3, b"three")]
    assert {e.stream_id for e in got if isinstance(e, h2.events.StreamEnded)} == {1, 3}
    assert server.quiet()


def test_a_shut_window_holds_the_stream_back_and_its_update_reopens_it() -> None:
    server, client = pair()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    client.send_headers(1, REQ, end_stream=True)
    feed(server, client.data_to_send())
    client.receive_data(server.data_to_send())  # the SETTINGS ack
    server.respond(1, 200, [], end=False)
    blocked = server.send_body(1, b"x" * (HIGH + 5000), True, 1.0)
    assert blocked
    got = client_events(client, server)
    sent = sum(len(e.data or b"") for e in got if isinstance(e, h2.events.DataReceived))
    assert sent == 1000  # the stream's window, no more
    # a stall past the write timeout is reset with CANCEL; short of it, nothing happens
    assert server.stalled(5.0, 10.0) == []
    # the client reads and opens the window: the rest flows, and the stream is released
    client.increment_flow_control_window(HIGH + 10000, stream_id=1)
    client.increment_flow_control_window(HIGH + 10000)
    events = feed(server, client.data_to_send(), 2.0)
    assert WindowOpened(1) in events
    got = client_events(client, server)
    sent += sum(len(e.data or b"") for e in got if isinstance(e, h2.events.DataReceived))
    assert sent == HIGH + 5000
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)


def test_a_zero_window_stall_is_reset_with_cancel() -> None:
    server, client = pair()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    client.send_headers(1, REQ, end_stream=True)
    feed(server, client.data_to_send())
    server.respond(1, 200, [], end=False)
    server.send_body(1, b"data", False, 1.0)
    client_events(client, server)
    assert server.stalled(10.0, 60.0) == []
    assert server.stalled(61.0, 60.0) == [StreamReset(1)]
    resets = [e for e in client_events(client, server) if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(1, ErrorCodes.CANCEL)]


def test_a_body_past_the_limit_is_rejected_with_413() -> None:
    server, client = pair(Limits(max_body_size=10))
    client.send_headers(1, REQ)
    client.send_data(1, b"x" * 11, end_stream=True)
    events = feed(server, client.data_to_send())
    assert RequestRejected(1, 413) in events
    assert not any(isinstance(e, RequestReady) for e in events)


def test_a_client_reset_ends_the_exchange() -> None:
    server, client = pair()
    client.send_headers(1, REQ, end_stream=True)
    feed(server, client.data_to_send())
    client.reset_stream(1)
    assert StreamReset(1) in feed(server, client.data_to_send())


def goaway(client: h2.connection.H2Connection, server: Http2Core) -> h2.events.ConnectionTerminated:
    got = [
        e for e in client_events(client, server) if isinstance(e, h2.events.ConnectionTerminated)
    ]
    assert got, "no GOAWAY"
    return got[0]


def test_rapid_reset_is_answered_with_enhance_your_calm() -> None:
    server, client = pair(Limits(per_second=20))
    events: list[object] = []
    for i in range(25):
        sid = 1 + 2 * i
        client.send_headers(sid, REQ, end_stream=True)
        client.reset_stream(sid)
        events += feed(server, client.data_to_send(), 0.5)
    assert ConnectionEnded(ErrorCodes.ENHANCE_YOUR_CALM) in events
    assert goaway(client, server).error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert server.receive(b"more", 0.6) == []  # nothing is read after it


def test_resets_spread_over_seconds_are_fine() -> None:
    server, client = pair(Limits(per_second=5))
    for i in range(20):
        client.send_headers(1 + 2 * i, REQ, end_stream=True)
        client.reset_stream(1 + 2 * i)
        events = feed(server, client.data_to_send(), float(i))
        assert not any(isinstance(e, ConnectionEnded) for e in events)


@pytest.mark.parametrize("frame", ["ping", "settings"])
def test_ping_and_settings_floods_get_enhance_your_calm(frame: str) -> None:
    server, client = pair(Limits(per_second=10))
    raw = b""
    for i in range(30):
        if frame == "ping":
            raw += PingFrame(0, opaque_data=b"%08d" % i).serialize()
        else:
            raw += SettingsFrame(0, settings={h2.settings.SettingCodes.ENABLE_PUSH: 0}).serialize()
    events = feed(server, client.data_to_send() + raw, 0.0)
    assert ConnectionEnded(ErrorCodes.ENHANCE_YOUR_CALM) in events
    assert goaway(client, server).error_code == ErrorCodes.ENHANCE_YOUR_CALM


@pytest.mark.parametrize("split", [0, 5])
def test_a_continuation_flood_is_bounded_before_hpack(split: int) -> None:
    server, client = pair(Limits(max_header_list_size=4096))
    client_preface = client.data_to_send()
    raw = HeadersFrame(1, data=b"\x82", flags=["END_STREAM"]).serialize()  # no END_HEADERS
    raw += b"".join(ContinuationFrame(1, data=b"\0" * 1000).serialize() for _ in range(10))
    events = feed(server, client_preface + raw, split=split)
    assert ConnectionEnded(ErrorCodes.ENHANCE_YOUR_CALM) in events
    assert goaway(client, server).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_an_hpack_bomb_is_bounded_on_the_decoded_list() -> None:
    server, client = pair(Limits(max_header_list_size=8192))
    # one 3 KB header added to the dynamic table, then referenced many times: a small
    # block that decodes to a huge list
    client.send_headers(1, [*REQ, (b"x-big", b"a" * 3000)], end_stream=True)
    feed(server, client.data_to_send())
    block = client.encoder.encode(REQ)
    names = [name for name, _ in client.encoder.header_table.dynamic_entries]
    index = bytes([0x80 | (62 + names.index(b"x-big"))])  # in the dynamic table
    block += index * 30
    raw = HeadersFrame(3, data=block, flags=["END_STREAM", "END_HEADERS"]).serialize()
    events = feed(server, raw)
    assert any(isinstance(e, ConnectionEnded) for e in events)
    assert goaway(client, server).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_too_many_concurrent_streams_end_the_connection() -> None:
    server, client = pair(Limits(max_concurrent_streams=2))
    client.receive_data(server.data_to_send())
    raw = b"".join(
        HeadersFrame(sid, data=client.encoder.encode(REQ), flags=["END_HEADERS"]).serialize()
        for sid in (1, 3, 5)
    )
    events = feed(server, client.data_to_send() + raw)
    assert any(isinstance(e, ConnectionEnded) for e in events)
    assert goaway(client, server).error_code == ErrorCodes.PROTOCOL_ERROR


def test_an_oversized_frame_is_a_frame_size_error() -> None:
    server, client = pair(Limits(max_frame_size=16384))
    client.send_headers(1, REQ)
    raw = client.data_to_send()
    raw += b"\x00\x80\x00\x00\x00\x00\x00\x00\x01" + b"x" * 32768  # DATA of 32 KiB
    events = feed(server, raw)
    assert any(isinstance(e, ConnectionEnded) for e in events)
    assert goaway(client, server).error_code == ErrorCodes.FRAME_SIZE_ERROR


def test_graceful_goaway_names_the_last_stream_and_lets_it_finish() -> None:
    server, client = pair()
    client.send_headers(1, REQ, end_stream=True)
    feed(server, client.data_to_send())
    server.goaway()
    got = goaway(client, server)
    assert (got.error_code, got.last_stream_id) == (ErrorCodes.NO_ERROR, 1)
    # a stream opened after it is refused; the one before it is still answered
    raw = HeadersFrame(3, data=client.encoder.encode(REQ), flags=["END_HEADERS", "END_STREAM"])
    events = feed(server, raw.serialize())
    assert not any(isinstance(e, RequestReady) for e in events)
    server.respond(1, 200, [], end=True)
    out = server.data_to_send()
    assert b"\x00\x00\x04\x03\x00\x00\x00\x00\x03\x00\x00\x00\x07" in out  # RST_STREAM 3 REFUSED
    assert server.quiet()


def test_the_preface_is_checked() -> None:
    server = Http2Core(Limits())
    server.start()
    events = server.receive(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10, 0.0)
    assert events
    assert isinstance(events[0], ConnectionEnded)
    assert PREFACE.startswith(b"PRI * HTTP/2.0")


def test_nothing_goes_out_after_a_goaway_that_ends_the_connection() -> None:
    server, client = pair(Limits(per_second=1))
    client.send_headers(1, REQ, end_stream=True)
    feed(server, client.data_to_send(), 0.0)
    server.respond(1, 200, [], end=False)
    client.ping(b"12345678")
    client.ping(b"87654321")
    assert ConnectionEnded(ErrorCodes.ENHANCE_YOUR_CALM) in feed(server, client.data_to_send())
    server.data_to_send()
    assert server.send_body(1, b"late", True, 0.0) is False
    server.reset(1)
    server.goaway()
    assert server.data_to_send() == b""


@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=30))
def test_requests_are_the_same_at_any_split_points(cuts: list[int]) -> None:
    server, client = pair()
    for sid in (1, 3, 5):
        client.send_headers(sid, [*REQ, (b"x-n", b"%d" % sid)])
        client.send_data(sid, b"b" * (sid * 100), end_stream=True)
    data = client.data_to_send()
    events: list[object] = []
    start = 0
    for cut in cuts:
        events += server.receive(data[start : start + cut], 0.0)
        start += cut
    events += server.receive(data[start:], 0.0)
    ready = {e.stream_id: e.request for e in events if isinstance(e, RequestReady)}
    assert sorted(ready) == [1, 3, 5]
    for sid, req in ready.items():
        assert (b"x-n", b"%d" % sid) in req.headers
        assert bytes(req.body) == b"b" * (sid * 100)
