from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from swserve.errors import IPCError
from swserve.ipc import codec, framing

FRAMES = [
    (framing.HELLO, 0, 0, 0, codec.encode_hello(3, 1234, 1)),
    (framing.REQUEST, framing.MORE, 2**63, 7, b"x" * 1000),
    (
        framing.RESPONSE_START,
        framing.END | 0x05,
        1,
        1,
        codec.encode_response_start(200, b"a: b\r\n", b"hi"),
    ),
    (framing.RESPONSE_BODY, framing.END, 9, 4, b""),
    (framing.DISCONNECT, 0, 5, 2, b""),
]
STREAM = b"".join(framing.encode(*f) for f in FRAMES)


def test_header_is_twenty_bytes() -> None:
    assert framing.HEADER_SIZE == 20
    assert len(framing.encode(framing.DISCONNECT, 0, 1, 1)) == 20


def test_round_trip_whole() -> None:
    assert framing.FrameDecoder().feed(STREAM) == FRAMES


def test_round_trip_byte_by_byte() -> None:
    decoder = framing.FrameDecoder()
    out = []
    for i in range(len(STREAM)):
        out += decoder.feed(STREAM[i : i + 1])
    assert out == FRAMES
    assert decoder.pending == 0


def test_trailing_partial_frame_is_held_back() -> None:
    decoder = framing.FrameDecoder()
    extra = framing.encode(framing.RESPONSE_BODY, 0, 1, 1, b"abcdef")
    assert decoder.feed(STREAM + extra[:25]) == FRAMES
    assert decoder.pending == 25
    assert decoder.feed(extra[25:]) == [(framing.RESPONSE_BODY, 0, 1, 1, b"abcdef")]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_split_points_give_the_same_frames(cuts: list[int]) -> None:
    decoder = framing.FrameDecoder()
    points = [0, *sorted(cuts), len(STREAM)]
    out = []
    for a, b in itertools.pairwise(points):
        out += decoder.feed(STREAM[a:b])
    assert out == FRAMES


@pytest.mark.parametrize(
    "bad",
    [
        b"X" + STREAM[1:20],  # magic
        STREAM[:1] + b"\x09" + STREAM[2:20],  # version
        STREAM[:2] + b"\xee" + STREAM[3:20],  # type
    ],
)
def test_corrupt_header_raises(bad: bytes) -> None:
    with pytest.raises(IPCError):
        framing.FrameDecoder().feed(bad)


def test_oversized_length_raises_before_buffering() -> None:
    header = framing.encode_header(framing.RESPONSE_BODY, 0, 1, 1, framing.MAX_PAYLOAD + 1)
    with pytest.raises(IPCError):
        framing.FrameDecoder().feed(header)


@given(st.binary(max_size=200))
def test_garbage_raises_only_ipc_error_and_buffers_little(data: bytes) -> None:
    decoder = framing.FrameDecoder()
    try:
        decoder.feed(data)
    except IPCError:
        return
    assert decoder.pending <= framing.HEADER_SIZE + framing.MAX_PAYLOAD


def test_body_frames_split_at_the_limit_and_end_once() -> None:
    data = b"x" * (framing.MAX_PAYLOAD * 2 + 5)
    frames = framing.FrameDecoder().feed(b"".join(framing.body_frames(3, 4, data, True)))
    assert [len(f[4]) for f in frames] == [framing.MAX_PAYLOAD, framing.MAX_PAYLOAD, 5]
    assert [bool(f[1] & framing.END) for f in frames] == [False, False, True]
    assert (
        framing.FrameDecoder().feed(b"".join(framing.body_frames(3, 4, b"", True)))[0][1]
        == framing.END
    )


# -- BIG payloads: no copies of their own ------------------------------------------------------

BIG_FRAMES = [
    (framing.REQUEST, 0, 1, 1, b"h" * 30 + b"q" * framing.BIG),
    (framing.HEARTBEAT, 0, 0, 0, b""),
    (framing.RESPONSE_START, framing.END, 2, 1, bytes(range(256)) * 1024),
    (framing.RESPONSE_BODY, 0, 3, 1, b"small"),
    (framing.RESPONSE_BODY, framing.END, 3, 1, b"z" * (framing.BIG + 1)),
]
BIG_STREAM = b"".join(
    b"".join(
        framing.body_frames(s, r, p, bool(f & framing.END))
        if k == framing.RESPONSE_BODY
        else [framing.encode(k, f, s, r, p)]
    )
    for k, f, s, r, p in BIG_FRAMES
)


def as_bytes(frames: list[framing.Frame]) -> list[tuple[int, int, int, int, bytes]]:
    return [(k, f, s, r, bytes(p)) for k, f, s, r, p in frames]


def test_a_big_payload_read_whole_is_a_view_of_that_read() -> None:
    frames = framing.FrameDecoder().feed(BIG_STREAM)
    assert as_bytes(frames) == BIG_FRAMES
    big = frames[0][4]
    assert isinstance(big, memoryview)
    assert big.obj is BIG_STREAM  # no copy
    assert all(type(f[4]) is bytes for f in frames if len(f[4]) < framing.BIG)


def test_a_cut_big_payload_is_assembled_once_in_its_own_buffer() -> None:
    decoder = framing.FrameDecoder()
    cut = framing.HEADER_SIZE + 100
    assert decoder.feed(BIG_STREAM[:cut]) == []
    assert decoder.pending == 100
    target = decoder.target()
    assert target is not None
    assert len(target) == len(BIG_FRAMES[0][4]) - 100
    frames = decoder.feed(BIG_STREAM[cut:])
    assert as_bytes(frames) == BIG_FRAMES
    assert type(frames[0][4]) is bytearray
    assert decoder.pending == 0
    assert decoder.target() is None


@given(st.lists(st.integers(min_value=0, max_value=len(BIG_STREAM)), max_size=12), st.booleans())
def test_big_frames_survive_any_split_points(cuts: list[int], recv_into: bool) -> None:
    """Also as a blocking reader does it: recv_into the decoder's target when it offers one."""
    decoder = framing.FrameDecoder()
    points = [0, *sorted(cuts), len(BIG_STREAM)]
    out = []
    for a, b in itertools.pairwise(points):
        target = decoder.target() if recv_into else None
        if target is not None:
            n = min(len(target), b - a)
            target[:n] = BIG_STREAM[a : a + n]
            out += decoder.advance(n)
            a += n
        out += decoder.feed(BIG_STREAM[a:b])
    assert as_bytes(out) == BIG_FRAMES
    assert decoder.pending == 0


def test_body_frames_send_a_big_part_as_its_own_buffer() -> None:
    data = b"y" * framing.BIG
    buffers = framing.body_frames(1, 2, data, True)
    assert len(buffers) == 2
    assert len(buffers[0]) == framing.HEADER_SIZE
    assert isinstance(buffers[1], memoryview)
    assert buffers[1].obj is data
