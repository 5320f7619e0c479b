from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from swserve.errors import IPCError
from swserve.ipc import codec

field = st.binary(max_size=30).filter(lambda b: b"\0" not in b)


@given(
    method=field,
    target=field,
    headers=st.lists(st.tuples(field, field), max_size=10),
    body=st.binary(max_size=100),
    client=st.one_of(st.none(), st.tuples(st.just("127.0.0.1"), st.integers(0, 65535))),
)
def test_request_round_trip(method, target, headers, body, client) -> None:
    prefix = codec.conn_prefix("http", client, ("127.0.0.1", 8000))
    payload = codec.encode_request(method, target, b"1.1", prefix, headers, body)
    head, got_body = codec.decode_request(payload)
    assert (head.method, head.target, head.version) == (method, target, b"1.1")
    assert list(head.conn) == prefix
    assert head.headers == headers
    assert got_body == body


def test_response_start_round_trip() -> None:
    payload = codec.encode_response_start(404, b"x: y\r\n", b"body")
    assert codec.decode_response_start(payload) == (404, b"x: y\r\n", b"body")


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", codec.encode_response_start(200, b"h")[:-1], b"\x05\x00" + b"\x00" * 4],
)
def test_bad_response_start_raises(payload: bytes) -> None:
    with pytest.raises(IPCError):
        codec.decode_response_start(payload)


def test_bad_request_raises() -> None:
    with pytest.raises(IPCError):
        codec.decode_request(b"\x01")
    with pytest.raises(IPCError):
        codec.decode_request(b"\x03\x00\x00\x00a\0b")


def test_hello_and_ready() -> None:
    assert codec.decode_hello(codec.encode_hello(2, 99, 4)) == (2, 99, 4)
    assert codec.decode_ready(codec.encode_ready(2, 99, 4, "asgi")) == (2, 99, 4, "asgi")
    with pytest.raises(IPCError):
        codec.decode_hello(b"abc")
