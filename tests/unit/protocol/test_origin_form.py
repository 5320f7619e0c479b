"""``origin_form``: the path and query of any request target (RFC 9112 §3.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from swserve.apps.wsgi import split_target
from swserve.protocol.head_checks import origin_form


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/static/x.css?v=1", b"/static/x.css?v=1"),
        (b"*", b"*"),
        (b"http://host/static/x.css", b"/static/x.css"),
        (b"http://host:8080/static/x.css?v=1", b"/static/x.css?v=1"),
        (b"https://user@host/a", b"/a"),
        (b"http://host", b"/"),
        (b"http://host?q=1", b"/?q=1"),
        (b"HTTP://host/a/../b", b"/a/../b"),  # not normalised: the static rules refuse it
    ],
)
def test_origin_form(target: bytes, expected: bytes) -> None:
    assert origin_form(target) == expected


@given(st.binary(max_size=40).map(lambda b: b"/" + b))
def test_origin_form_leaves_origin_form_alone(target: bytes) -> None:
    assert origin_form(target) == target
    path, query = split_target(target)
    assert path + (b"?" + query if b"?" in target else b"") == target
