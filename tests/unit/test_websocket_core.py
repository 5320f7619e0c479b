"""The sans-IO WebSocket pieces, byte by byte: handshake checks, the 101, deflate
negotiation, and a session core driven by the ``websockets`` client protocol as the
peer (no sockets, no loop)."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings, strategies as st
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, Protocol, Side

from swserve.ipc import codec, framing
from swserve.protocol.h11_parser import H11Parser
from swserve.protocol.limits import Limits
from swserve.protocol.parser import HttptoolsParser, Parser
from swserve.protocol.request import Request
from swserve.protocol.websocket import WebSocketCore, negotiate
from swserve.protocol.ws_handshake import (
    Closed,
    Message,
    Upgrade,
    accept_key,
    accept_response,
    check_upgrade,
    wants_websocket,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(**changes: object) -> Request:
    req = Request()
    req.method = b"GET"
    req.target = b"/chat"
    headers = {
        b"host": b"server.example.com",
        b"upgrade": b"websocket",
        b"connection": b"keep-alive, Upgrade",
        b"sec-websocket-key": KEY,
        b"sec-websocket-version": b"13",
        b"sec-websocket-protocol": b"chat, superchat",
        b"sec-websocket-extensions": b"permessage-deflate; client_max_window_bits",
    }
    for name, value in changes.items():
        if name in ("method", "version"):
            setattr(req, name, value)
            continue
        key = name.replace("_", "-").encode()
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value  # type: ignore[assignment]
    req.headers = list(headers.items())
    req.websocket = b"websocket" in headers.get(b"upgrade", b"").lower()  # as the parsers do
    return req


@pytest.mark.parametrize("parser", [HttptoolsParser, H11Parser])
def test_the_parsers_flag_a_websocket_upgrade(parser: Callable[[Limits], Parser]) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
    (req,) = parser(Limits()).feed(head)
    assert req.websocket
    (plain,) = parser(Limits()).feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not plain.websocket
    (other,) = parser(Limits()).feed(head.replace(b"WebSocket", b"h2c"))
    assert not other.websocket


# -- the handshake ----------------------------------------------------------------------


def test_a_valid_upgrade() -> None:
    req = upgrade_request()
    assert wants_websocket(req)
    got = check_upgrade(req)
    assert got == Upgrade(
        KEY, ("chat", "superchat"), (b"permessage-deflate; client_max_window_bits",)
    )


def test_upgrade_is_a_token_of_the_upgrade_header() -> None:
    assert wants_websocket(upgrade_request(upgrade=b"h2c, WebSocket"))
    assert not wants_websocket(upgrade_request(upgrade=b"h2c"))
    assert not wants_websocket(upgrade_request(upgrade=None))


def test_bad_handshakes_get_400_and_a_wrong_version_426() -> None:
    assert check_upgrade(upgrade_request(method=b"POST")) == 400
    assert check_upgrade(upgrade_request(version=b"1.0")) == 400
    assert check_upgrade(upgrade_request(connection=b"keep-alive")) == 400
    assert check_upgrade(upgrade_request(sec_websocket_key=None)) == 400
    assert check_upgrade(upgrade_request(sec_websocket_key=b"!!!")) == 400
    assert check_upgrade(upgrade_request(sec_websocket_key=b"c2hvcnQ=")) == 400
    assert check_upgrade(upgrade_request(sec_websocket_version=None)) == 400
    assert check_upgrade(upgrade_request(sec_websocket_version=b"8")) == 426
    assert check_upgrade(upgrade_request(sec_websocket_version=b"13, 8")) == 426


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_101_response() -> None:
    upgrade = check_upgrade(upgrade_request())
    assert isinstance(upgrade, Upgrade)
    head = accept_response(upgrade, "chat", b"x-extra: 1\r\n", b"permessage-deflate", b"")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    assert b"sec-websocket-protocol: chat\r\n" in head
    assert b"sec-websocket-extensions: permessage-deflate\r\n" in head
    assert head.endswith(b"x-extra: 1\r\n\r\n")


def test_deflate_negotiation() -> None:
    header, extensions = negotiate([b"permessage-deflate; client_max_window_bits"], True)
    assert header.startswith(b"permessage-deflate")
    assert [ext.name for ext in extensions] == ["permessage-deflate"]
    assert negotiate([b"permessage-deflate"], False) == (b"", [])
    assert negotiate([b"x-unknown"], True) == (b"", [])
    assert negotiate([b";;; not a header"], True) == (b"", [])


# -- a session --------------------------------------------------------------------------


def client(extensions: list[object] | None = None) -> Protocol:
    proto = Protocol(Side.CLIENT, state=OPEN, max_size=None)
    if extensions:
        proto.extensions = extensions  # type: ignore[assignment]
    return proto


def frames(proto: Protocol) -> list[Frame]:
    out = proto.events_received()
    assert all(isinstance(f, Frame) for f in out)
    return out  # type: ignore[return-value]  # after a handshake, only frames


def wire(proto: Protocol) -> bytes:
    return b"".join(proto.data_to_send())


def feed_bytewise(core: WebSocketCore, data: bytes) -> list[Message | Closed]:
    events: list[Message | Closed] = []
    for i in range(len(data)):
        events += core.feed(data[i : i + 1])
    return events


def test_messages_byte_by_byte() -> None:
    peer = client()
    peer.send_text("héllo".encode())
    peer.send_binary(b"\x00\x01")
    core = WebSocketCore(1 << 20)
    assert feed_bytewise(core, wire(peer)) == [
        Message(True, "héllo".encode()),
        Message(False, b"\x00\x01"),
    ]
    assert core.output() == []


def test_fragments_are_reassembled_and_pings_between_them_answered() -> None:
    peer = client()
    peer.send_text(b"one ", fin=False)
    peer.send_ping(b"p")
    peer.send_continuation(b"two ", fin=False)
    peer.send_continuation(b"three", fin=True)
    core = WebSocketCore(1 << 20)
    assert feed_bytewise(core, wire(peer)) == [Message(True, b"one two three")]
    peer.receive_data(b"".join(b for b in core.output() if b))
    assert [(f.opcode, f.data) for f in frames(peer)] == [(Opcode.PONG, b"p")]


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=100)), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
)
def test_any_split_gives_the_same_messages(messages: list[bytes | str], cuts: list[int]) -> None:
    peer = client()
    for message in messages:
        if isinstance(message, str):
            peer.send_text(message.encode())
        else:
            peer.send_binary(message)
    data = wire(peer)
    core = WebSocketCore(1 << 20)
    events: list[Message | Closed] = []
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        events += core.feed(data[start:cut]) if cut > start else []
        start = max(start, cut)
    expected = [
        Message(True, m.encode()) if isinstance(m, str) else Message(False, m) for m in messages
    ]
    assert events == expected


def close_code_sent(core: WebSocketCore) -> int:
    out = core.output()
    assert out[-1] is None  # the server ends the TCP stream after a failure
    frame = out[0]
    assert frame is not None
    assert frame[0] == 0x88
    return int(struct.unpack("!H", frame[2:4])[0])


def test_invalid_utf8_fails_fast_with_1007() -> None:
    peer = client()
    peer.send_text(b"ok \xc3", fin=False)  # a cut sequence is fine so far
    core = WebSocketCore(1 << 20)
    assert core.feed(wire(peer)) == []
    peer.send_continuation(b"\x28 broken", fin=False)  # not a continuation byte: fail now
    events = core.feed(wire(peer))
    assert events == [Closed(1007, events[0].reason)]  # type: ignore[union-attr]
    assert close_code_sent(core) == 1007


def test_a_message_over_max_size_gets_1009_even_in_fragments() -> None:
    peer = client()
    peer.send_binary(b"x" * 60, fin=False)
    peer.send_continuation(b"y" * 60, fin=True)
    core = WebSocketCore(100)
    events = core.feed(wire(peer))
    assert [type(e) for e in events] == [Closed]
    assert events[0].code == 1009  # type: ignore[union-attr]
    assert close_code_sent(core) == 1009


def test_a_deflate_bomb_gets_1009_without_inflating_it() -> None:
    _, server_ext = negotiate([b"permessage-deflate"], True)
    factory = ClientPerMessageDeflateFactory()
    response = [("server_max_window_bits", "12"), ("client_max_window_bits", "12")]
    peer = client([factory.process_response_params(response, [])])
    bomb = b"\x00" * (32 * 1024 * 1024)
    peer.send_binary(bomb)
    data = wire(peer)
    assert len(data) < len(bomb) // 100  # it is a bomb: tiny on the wire
    core = WebSocketCore(1 << 20, server_ext)
    events = core.feed(data)
    assert [(type(e), getattr(e, "code", 0)) for e in events] == [(Closed, 1009)]


def test_compressed_messages_are_inflated() -> None:
    _, server_ext = negotiate([b"permessage-deflate"], True)
    factory = ClientPerMessageDeflateFactory()
    response = [("server_max_window_bits", "12"), ("client_max_window_bits", "12")]
    peer = client([factory.process_response_params(response, [])])
    peer.send_text(b"abc" * 1000)
    core = WebSocketCore(1 << 20, server_ext)
    assert feed_bytewise(core, wire(peer)) == [Message(True, b"abc" * 1000)]
    core.send(False, b"z" * 1000)
    out = b"".join(b for b in core.output() if b)
    assert len(out) < 100  # compressed on the way out too
    peer.receive_data(out)
    assert [zlib.crc32(f.data) for f in frames(peer)] == [zlib.crc32(b"z" * 1000)]


def test_unmasked_client_frame_gets_1002() -> None:
    core = WebSocketCore(1 << 20)
    events = core.feed(Frame(Opcode.TEXT, b"hi").serialize(mask=False, extensions=[]))
    assert events[0] == Closed(1002, events[0].reason)  # type: ignore[union-attr]
    assert close_code_sent(core) == 1002


def test_the_clients_close_is_echoed_and_reported() -> None:
    peer = client()
    peer.send_close(4002, "ciao")
    core = WebSocketCore(1 << 20)
    assert feed_bytewise(core, wire(peer)) == [Closed(4002, "ciao")]
    out = core.output()
    assert out[-1] is None
    assert core.done


def test_our_close_then_theirs() -> None:
    core = WebSocketCore(1 << 20)
    core.close(1012, "restart")
    peer = client()
    peer.receive_data(b"".join(b for b in core.output() if b))
    assert peer.close_rcvd is not None
    assert peer.close_rcvd.code == 1012
    assert not core.send(True, b"late")  # closing: nothing more goes out
    assert core.feed(wire(peer)) == [Closed(1012, "restart")]
    assert core.output() == [None]


def test_an_invalid_close_code_from_the_app_becomes_1000() -> None:
    core = WebSocketCore(1 << 20)
    core.close(1005)  # reserved: never on the wire
    frame = core.output()[0]
    assert frame is not None
    assert struct.unpack("!H", frame[2:4])[0] == 1000


def test_eof_without_a_close_is_1006() -> None:
    core = WebSocketCore(1 << 20)
    assert core.feed(b"") == [Closed(1006, "")]


def test_pings_carry_our_payload_and_a_pong_clears_them() -> None:
    core = WebSocketCore(1 << 20)
    core.ping(5.0)
    assert core.ping_sent == 5.0
    peer = client()
    peer.receive_data(b"".join(b for b in core.output() if b))
    (ping,) = frames(peer)
    assert ping.opcode is Opcode.PING
    core.feed(wire(peer))  # the client's automatic pong
    assert core.ping_sent == 0.0
    unrelated = client()
    unrelated.send_pong(b"not ours")
    core.ping(6.0)
    core.feed(wire(unrelated))
    assert core.ping_sent == 6.0


# -- the IPC payloads -------------------------------------------------------------------


def test_ws_payloads_round_trip() -> None:
    assert codec.decode_ws_accept(codec.encode_ws_accept("chat", b"x: 1\r\n")) == (
        "chat",
        b"x: 1\r\n",
    )
    assert codec.decode_ws_accept(codec.encode_ws_accept(None, b"")) == (None, b"")
    assert codec.decode_ws_close(codec.encode_ws_close(4001, "bye ü")) == (4001, "bye ü")


def test_a_message_over_max_payload_travels_in_parts() -> None:
    data = b"m" * (framing.MAX_PAYLOAD + 10)
    buffers = framing.message_frames(1, 2, True, data)
    decoder = framing.FrameDecoder()
    frames = [f for buf in buffers for f in decoder.feed(bytes(buf))]
    assert [(f[0], f[1]) for f in frames] == [
        (framing.WS_MESSAGE, framing.WS_TEXT | framing.MORE),
        (framing.WS_MESSAGE, framing.WS_TEXT),
    ]
    assert b"".join(bytes(f[4]) for f in frames) == data
    small = framing.message_frames(1, 2, False, b"hi")
    assert decoder.feed(b"".join(small)) == [(framing.WS_MESSAGE, 0, 1, 2, b"hi")]


def test_a_close_amid_a_fragmented_message_is_a_clean_close() -> None:
    # Autobahn 7.1.5: control frames may come between fragments (RFC 6455 §5.4)
    peer = client()
    peer.send_text(b"frag", fin=False)
    data = wire(peer)
    data += Frame(Opcode.CLOSE, struct.pack("!H", 1000)).serialize(mask=True, extensions=[])
    data += Frame(Opcode.CONT, b"ment").serialize(mask=True, extensions=[])
    core = WebSocketCore(1 << 20)
    assert core.feed(data) == [Closed(1000, "")]
    out = core.output()
    frame = out[0]
    assert frame is not None
    assert struct.unpack("!H", frame[2:4])[0] == 1000
    assert out[-1] is None


# -- the fast path (whole masked data frames unmasked by the core itself) ------------------


def raw_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x01\x02\x03\x04",
    wide: int = 0,
) -> bytes:
    """A client frame byte by byte; ``wide`` forces the 16- (2) or 64-bit (8) length form."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    masked = 0x80 if mask is not None else 0
    size = len(payload)
    if wide == 8 or size >= 65536:
        head = bytes((first, masked | 127)) + size.to_bytes(8, "big")
    elif wide == 2 or size >= 126:
        head = bytes((first, masked | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, masked | size))
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


_payloads = st.binary(max_size=200)
_frames = st.one_of(
    st.builds(lambda p, w: raw_frame(2, p, wide=w), _payloads, st.sampled_from([0, 2, 8])),
    st.builds(lambda t: raw_frame(1, t.encode()), st.text(max_size=60)),
    st.just(raw_frame(1, b"caf\xc3")),  # invalid UTF-8: 1007
    st.just(raw_frame(2, b"x" * 1100)),  # over max_size: 1009
    st.builds(lambda p: raw_frame(2, p, mask=None), _payloads),  # unmasked: 1002
    st.builds(lambda p: raw_frame(2, p, rsv=4), _payloads),  # a reserved bit: 1002
    st.builds(lambda p: raw_frame(9, p[:100]), _payloads),  # ping
    st.builds(lambda p: raw_frame(10, p[:100]), _payloads),  # pong
    st.builds(  # a fragmented message, a ping amid it
        lambda a, b: raw_frame(2, a, fin=False) + raw_frame(9, b"p") + raw_frame(0, b),
        _payloads,
        _payloads,
    ),
    st.just(raw_frame(0, b"stray")),  # a continuation without a start: 1002
    st.just(raw_frame(8, struct.pack("!H", 1000) + b"bye")),  # their close
)


def run_core(
    core: WebSocketCore, chunks: list[bytes], app_close_at: int | None, eof: bool
) -> tuple[list[Message | Closed], bytes, int, Closed | None, bool]:
    """Feed ``chunks`` (the app closing before chunk ``app_close_at``) → what came out."""
    events: list[Message | Closed] = []
    out: list[bytes | None] = []
    for index, chunk in enumerate(chunks):
        if index == app_close_at:
            core.close(1001, "bye")
            out += core.output()
        events += core.feed(chunk)
        out += core.output()
    if eof:
        events += core.feed(b"")
        out += core.output()
    written = b"".join(b for b in out if b is not None)
    return events, written, out.count(None), core.closed, core.open


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(_frames, min_size=1, max_size=10),
    app_close_at=st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
    eof=st.booleans(),
)
def test_the_fast_path_answers_as_the_protocol_does(
    stream: list[bytes], app_close_at: int | None, eof: bool
) -> None:
    """Any frames, one read each, the app closing at any point: the same messages, the same
    close and the same bytes out as with every frame parsed by ``websockets``."""
    fast, slow = WebSocketCore(1000), WebSocketCore(1000)
    slow._walk = None  # every byte to the websockets protocol
    assert run_core(fast, stream, app_close_at, eof) == run_core(slow, stream, app_close_at, eof)


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(_frames, min_size=1, max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=12),
    eof=st.booleans(),
)
def test_the_fast_path_does_not_depend_on_where_reads_end(
    stream: list[bytes], cuts: list[int], eof: bool
) -> None:
    """The same frames cut anywhere give what one read per frame gives."""
    data = b"".join(stream)
    points = sorted({0, *(c % (len(data) + 1) for c in cuts), len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points) if b > a]
    assert run_core(WebSocketCore(1000), chunks, None, eof) == run_core(
        WebSocketCore(1000), stream, None, eof
    )


def test_a_large_message_cut_across_reads_is_gathered_once() -> None:
    payload = bytes(range(256)) * 300  # 76,800 bytes: the 64-bit length form
    data = raw_frame(2, payload) + raw_frame(1, b"next")
    core = WebSocketCore(1 << 20)
    events: list[Message | Closed] = []
    for start in range(0, len(data), 7000):
        events += core.feed(data[start : start + 7000])
    assert events == [Message(False, payload), Message(True, b"next")]


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 5, 125, 126, 20000, 70000]), min_size=1, max_size=5),
    read=st.integers(min_value=1, max_value=40000),
)
def test_a_reader_may_fill_the_rest_of_a_large_frame_in_place(sizes: list[int], read: int) -> None:
    """What WsReader does: reads of at most ``read`` bytes, each into the core's read target
    when it offers one (the rest of a large frame), else fed as bytes."""
    payloads = [bytes([n % 251]) * n for n in sizes]
    data = b"".join(raw_frame(2, p) for p in payloads)
    core = WebSocketCore(1 << 20)
    events: list[Message | Closed] = []
    pos = direct = 0
    while pos < len(data):
        target = core.read_target()
        if target is not None:
            take = min(read, len(target), len(data) - pos)
            target[:take] = data[pos : pos + take]
            events += core.advance(take)
            direct += 1
        else:
            take = min(read, len(data) - pos)
            events += core.feed(memoryview(bytearray(data[pos : pos + take])))
        pos += take
    assert events == [Message(False, p) for p in payloads]
    if read < 40000 and max(sizes) == 70000:
        assert direct  # a cut 70,000-byte frame was filled in place
