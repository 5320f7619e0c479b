"""RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host header."""

from __future__ import annotations

import pytest

from swserve.protocol.head_checks import absolute_form_host


@pytest.mark.parametrize(
    ("target", "host"),
    [
        (b"/path", None),
        (b"*", None),
        (b"http://example.com/x?y", b"example.com"),
        (b"http://example.com:8080", b"example.com:8080"),
        (b"https://user:pw@example.com/", b"example.com"),
        (b"http://[::1]:81/p", b"[::1]:81"),
        (b"http://h?q", b"h"),
        (b"example.com:443", None),
    ],
)
def test_absolute_form_host(target: bytes, host: bytes | None) -> None:
    assert absolute_form_host(target) == host
