"""Both adapters read one response-header table (protocol/response_headers.py):
they reject the same headers, drop the same connection-level fields and set the
same flags, whatever the app's interface."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, strategies as st

from swserve.apps.asgi import RequestCycle
from swserve.apps.wsgi import _Response
from swserve.protocol import serializer
from tests.unit.apps.test_no_content_length import Sink

pytestmark = pytest.mark.timeout(30)


Outcome = tuple[int, bytes] | None  # (flags, header lines) as started, or None: rejected


def wsgi(name: bytes, value: bytes) -> Outcome:
    sink = Sink()
    response = _Response(sink, False)
    try:
        response.start_response("200 OK", [(name.decode("latin-1"), value.decode("latin-1"))])
    except ValueError:
        return None
    return response.flags, response.headers


def asgi(name: bytes, value: bytes) -> Outcome:
    sink = Sink()

    async def respond() -> Outcome:
        cycle = RequestCycle(sink, b"", head=False)
        try:
            await cycle.send(
                {"type": "http.response.start", "status": 200, "headers": [(name, value)]}
            )
        except ValueError:
            return None
        return cycle.flags, cycle.headers

    return asyncio.run(respond())


REJECTED = [
    (b"", b"v"),
    (b"x y", b"v"),
    (b"x:y", b"v"),
    (b"x\tz", b"v"),
    (b"x@y", b"v"),
    (b"x(y)", b"v"),
    (b'x"y', b"v"),
    (b"caf\xe9", b"v"),
    (b"x\x00", b"v"),
    (b"x-a", b"a\r\nb: c"),
    (b"x-a", b"a\nb"),
    (b"x-a", b"a\x00b"),
    (b"x-a", b"a\x01b"),
    (b"x-a", b"a\x7fb"),
    (b"Content-Length", b"ten"),
    (b"Content-Length", b"-1"),
]
DROPPED = [
    b"Connection",
    b"Keep-Alive",
    b"Proxy-Connection",
    b"TE",
    b"Trailer",
    b"Transfer-Encoding",
    b"Upgrade",
]


@pytest.mark.parametrize(("name", "value"), REJECTED)
def test_both_reject(name: bytes, value: bytes) -> None:
    assert wsgi(name, value) is None
    assert asgi(name, value) is None


@pytest.mark.parametrize("name", DROPPED)
def test_both_drop_connection_fields(name: bytes) -> None:
    assert wsgi(name, b"x") == asgi(name, b"x") == (0, b"")


def test_connection_close_is_a_flag() -> None:
    assert wsgi(b"Connection", b"close") == asgi(b"Connection", b"close")
    assert wsgi(b"Connection", b"close") == (serializer.APP_CLOSE, b"")


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        (b"Date", serializer.HAS_DATE),
        (b"Server", serializer.HAS_SERVER),
        (b"Content-Length", serializer.HAS_CONTENT_LENGTH),
    ],
)
def test_both_flag_the_fields_the_reactor_would_add(name: bytes, flag: int) -> None:
    assert wsgi(name, b" 0 ") == asgi(name, b" 0 ")
    outcome = wsgi(name, b"0")
    assert outcome is not None
    assert outcome[0] == flag


def test_obs_text_and_tab_are_allowed_in_values() -> None:
    assert wsgi(b"X-A", b"caf\xe9\tb") == asgi(b"X-A", b"caf\xe9\tb") == (0, b"X-A: caf\xe9\tb\r\n")


@given(st.binary(max_size=6), st.binary(max_size=6))
def test_both_agree_on_any_pair(name: bytes, value: bytes) -> None:
    assert wsgi(name, value) == asgi(name, value)
