"""The control plane's codec, byte by byte: every message round-trips, bad input is refused."""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import pytest
from hypothesis import given, strategies as st

from swserve.ipc import control, framing
from swserve.ipc.control import ControlError, Decoder, decode, encode

INT = st.integers(-(2**63), 2**63 - 1)
KINDS: dict[str, st.SearchStrategy[Any]] = {
    "int": INT,
    "float": st.floats(allow_nan=False),
    "bool": st.booleans(),
    "str": st.text(),
    "Reason": st.sampled_from(control.Reason),
    "Interface": st.sampled_from(control.Interface),
    "metrics": st.dictionaries(st.text(), INT),
}


def message_of(cls: type[control.Message]) -> st.SearchStrategy[control.Message]:
    args = [KINDS[kind] for _, kind in control.wire_fields(cls)]
    return st.builds(cls, *args)


MESSAGE = st.one_of([message_of(cls) for cls in control.MESSAGES])


def header(kind: int, length: int, flags: int = 0, session: int = 0, request: int = 0) -> bytes:
    return struct.pack("<BBBBIQI", 0x53, 1, kind, flags, length, session, request)


# -- the table ---------------------------------------------------------------------------


def test_every_type_has_one_message_and_every_message_is_documented() -> None:
    types = [cls.TYPE for cls in control.MESSAGES]
    assert len(types) == len(set(types))
    assert set(types) == set(control.Type)
    for cls in control.MESSAGES:
        assert cls.__doc__, cls
        assert cls.CHANNELS, cls
        assert cls.TYPE >= 64  # never a worker frame's type
        assert cls.TYPE not in framing.FRAME_NAMES


# -- byte by byte ------------------------------------------------------------------------


def test_ready_on_the_wire() -> None:
    wire = encode(control.Ready(3, 4242, control.Interface.ASGI))
    payload = struct.pack("<qq", 3, 4242) + struct.pack("<I", 4) + b"asgi"
    assert wire == header(65, len(payload)) + payload
    assert len(wire) == 20 + 8 + 8 + 4 + 4


def test_every_field_kind_on_the_wire() -> None:
    assert encode(control.Stop(now=True)) == header(64, 1) + b"\x01"
    assert encode(control.Reload()) == header(69, 0)
    assert encode(control.BackingOff(2, 3, 0.5)) == header(84, 24) + struct.pack("<qqd", 2, 3, 0.5)
    assert encode(control.Exit(1, 99, -1, 9)) == header(81, 32) + struct.pack("<qqqq", 1, 99, -1, 9)
    text = "caf\u00e9".encode()
    assert (
        encode(control.Halt(3, "caf\u00e9"))
        == header(82, 12 + len(text)) + struct.pack("<qI", 3, len(text)) + text
    )
    snapshot = json.dumps({"a": 1}, separators=(",", ":")).encode()
    assert (
        encode(control.MetricsSnapshot({"a": 1}))
        == header(108, 4 + len(snapshot)) + struct.pack("<I", len(snapshot)) + snapshot
    )


@given(MESSAGE)
def test_every_message_round_trips(message: control.Message) -> None:
    wire = encode(message)
    assert decode(wire) == message
    assert type(decode(wire)) is type(message)


@given(st.lists(MESSAGE, max_size=8), st.data())
def test_a_stream_cut_anywhere_gives_the_same_messages(
    messages: list[control.Message], data: st.DataObject
) -> None:
    wire = b"".join(map(encode, messages))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder = Decoder()
    out: list[control.Message] = []
    for start, stop in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += decoder.feed(wire[start:stop])
    assert out == messages


def test_byte_by_byte_stream() -> None:
    messages = [control.Term(), control.Retire(7, control.Reason.RELOAD), control.Served(7, 100)]
    wire = b"".join(map(encode, messages))
    ends = {len(b"".join(map(encode, messages[: i + 1]))) for i in range(len(messages))}
    decoder = Decoder()
    out = []
    for i in range(len(wire)):
        got = decoder.feed(wire[i : i + 1])
        assert len(got) == (1 if i + 1 in ends else 0)  # each message once its last byte is in
        out += got
    assert out == messages


def test_enums_compare_as_their_strings() -> None:
    assert str(control.Reason.MAX_REQUESTS) == "max-requests"
    labels: dict[str, int] = {control.Reason.MAX_REQUESTS: 1}
    assert labels["max-requests"] == 1  # a Reason is a label, as its string
    assert control.Mode("base") is control.Mode.BASE
    assert f"{control.Interface.WSGI}" == "wsgi"


# -- refused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"\x00" + header(69, 0)[1:], "bad control frame header"),  # magic
        (header(69, 0)[:1] + b"\x02" + header(69, 0)[2:], "bad control frame header"),  # version
        (header(63, 0), "unknown control message type 63"),
        (header(framing.REQUEST, 0), "unknown control message type 4"),  # a worker frame
        (header(69, 0, flags=1), "flags, session or request set"),
        (header(69, 0, session=5), "flags, session or request set"),
        (header(69, framing.MAX_PAYLOAD + 1), "control frame of"),
        (header(69, 1) + b"x", "1 byte(s) left over"),
        (header(67, 4) + b"\x01\x02\x03\x04", "Timeout: payload cut short"),
        (header(64, 1) + b"\x02", "Stop.now: not a bool"),
        (header(64, 0), "Stop.now: not a bool"),
        (header(82, 12) + struct.pack("<qI", 3, 5), "Halt.message: text cut short"),
        (header(82, 13) + struct.pack("<qI", 3, 1) + b"\xff", "not UTF-8"),
        (
            header(68, 8 + 4 + 4) + struct.pack("<qI", 1, 4) + b"nope",
            "Recycle.reason: 'nope' is not a Reason",
        ),
        (header(108, 4 + 2) + struct.pack("<I", 2) + b"[]", "not an object of integers"),
        (header(108, 4 + 1) + struct.pack("<I", 1) + b"{", "not JSON"),
        (
            header(108, 4 + 9) + struct.pack("<I", 9) + b'{"a":1.5}',
            "not an object of integers",
        ),
        (encode(control.Term()) * 2, "expected one control frame"),
        (encode(control.Term())[:-1] + b"", "expected one control frame"),
        (header(85, 0)[:10], "expected one control frame"),
    ],
)
def test_malformed_input_is_refused_with_a_reason(wire: bytes, why: str) -> None:
    with pytest.raises(ControlError, match=re.escape(why)):
        decode(wire)


def test_the_stream_decoder_refuses_too() -> None:
    decoder = Decoder()
    wire = encode(control.Scale(1))
    assert decoder.feed(wire[:5]) == []  # cut short: it waits for the rest
    assert decoder.feed(wire[5:]) == [control.Scale(1)]
    with pytest.raises(ControlError, match="unknown control message type 200"):
        decoder.feed(b"\x53\x01\xc8" + bytes(17))


def test_a_control_frame_on_a_worker_link_is_refused() -> None:
    from swserve.errors import IPCError

    with pytest.raises(IPCError):
        framing.FrameDecoder().feed(encode(control.Reload()))


@given(st.binary(max_size=200))
def test_garbage_either_decodes_or_is_refused(data: bytes) -> None:
    try:
        message = decode(data)
    except ControlError:
        return
    assert encode(message) == data  # what decodes is exactly what it encodes to
