"""Request-target and Host rules shared by both parsers (protocol/target.py).

The corpus (tests/corpus/requests) replays each rule through both parser glues
and the live server; these pin the rules themselves, case by case.
"""

from __future__ import annotations

import pytest

from swserve.errors import ProtocolError
from swserve.protocol.target import check_host, check_target


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        (b"GET", b"/a?x=1", b"/a?x=1"),
        # RFC 9112 §3.2: no form has a fragment; it is dropped (RFC 9110 §4.2.5)
        (b"GET", b"/a?x=1#frag", b"/a?x=1"),
        (b"GET", b"/a#frag", b"/a"),
        (b"GET", b"/#", b"/"),
        (b"OPTIONS", b"*", b"*"),
        (b"GET", b"http://example.org?x=1", b"http://example.org?x=1"),
        (b"GET", b"http://example.org:8080/p", b"http://example.org:8080/p"),
        (b"GET", b"http://[::1]:81/p", b"http://[::1]:81/p"),
        (b"GET", b"http://[v1.fe80::a+en1]/", b"http://[v1.fe80::a+en1]/"),
        (b"GET", b"http://ex%41mple.org/", b"http://ex%41mple.org/"),
        (b"GET", b"http://example.org/p#f", b"http://example.org/p"),
        (b"GET", b"example.com:443", b"example.com:443"),  # not absolute-form: left alone
    ],
)
def test_accepted_targets(method: bytes, target: bytes, expected: bytes) -> None:
    assert check_target(method, target) == expected


@pytest.mark.parametrize(
    ("method", "target"),
    [
        (b"GET", b"*"),  # RFC 9112 §3.2.4: asterisk-form is for OPTIONS only
        (b"POST", b"*"),
        (b"GET", b"http://]x/"),  # RFC 9112 §3.2.2: the authority must be a valid host
        (b"GET", b"http://a b/"),
        (b"GET", b"http://a:80x/"),
        (b"GET", b"http://[::1/"),
        (b"GET", b"http:///x"),  # RFC 9110 §4.2.1: empty host
        (b"GET", b"https://:443/x"),
        (b"GET", b"http://user@example.com/"),  # RFC 9110 §4.2.4: userinfo is an error
        (b"GET", b"http://u:p@example.com/"),
        (b"GET", b"#frag"),
    ],
)
def test_refused_targets(method: bytes, target: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_target(method, target)
    assert caught.value.status_hint == 400


@pytest.mark.parametrize(
    "value",
    [b"example.com", b"example.com:8080", b"127.0.0.1:80", b"[::1]", b"[::1]:8080", b"", b"a_b"],
)
def test_valid_host_values(value: bytes) -> None:
    check_host(value)


@pytest.mark.parametrize(
    "value",
    [
        b"example.com/evil?x",  # RFC 9112 §3.2: an invalid Host value MUST get 400
        b"example.com evil",
        b"example.com:80:80",
        b"example.com:http",
        b"ex@mple.com",
        b"[::1",
        b'exa"mple',
        b"\xff",
    ],
)
def test_invalid_host_values(value: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_host(value)
    assert caught.value.status_hint == 400
