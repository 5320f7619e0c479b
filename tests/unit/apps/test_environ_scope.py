"""WSGI environ and ASGI scope construction from request fields (no sockets)."""

from __future__ import annotations

import io

import pytest

from swserve.apps.asgi import build_scope
from swserve.apps.wsgi import WSGIAdapter, split_target
from swserve.ipc import codec
from swserve.protocol.request import RequestHead


def fields(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], version: bytes = b"1.1"
) -> RequestHead:
    prefix = codec.conn_prefix("http", ("10.0.0.7", 51000), ("127.0.0.1", 8000))
    payload = codec.encode_request(method, target, version, prefix, headers, b"")
    return codec.decode_request(payload)[0]


def environ(target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> dict:
    adapter = WSGIAdapter(lambda e, s: [], multithread=False, multiprocess=True)
    return adapter.environ(fields(b"POST", target, headers), body)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a/b?x=1", b"/a/b", b"x=1"),
        (b"/", b"/", b""),
        (b"*", b"*", b""),
        (b"http://example.com/p?q", b"/p", b"q"),
        (b"http://example.com", b"/", b""),
        # no path, a query: the authority ends at "?" and the query stays
        (b"http://example.org?x=1", b"/", b"x=1"),
        (b"http://example.org:8080?x=1&y=/z", b"/", b"x=1&y=/z"),
        (b"http://example.org/?x=1", b"/", b"x=1"),
        (b"/p?a?b", b"/p", b"a?b"),
    ],
)
def test_split_target(target: bytes, path: bytes, query: bytes) -> None:
    assert split_target(target) == (path, query)


def test_environ_basics() -> None:
    env = environ(
        b"/caf%C3%A9/x%2Fy?q=%20",
        [
            (b"host", b"example.com:8080"),
            (b"content-type", b"text/plain"),
            (b"x-a", b"1"),
            (b"x-a", b"2"),
        ],
        b"body",
    )
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/x/y"  # percent-decoded bytes as latin-1
    assert env["RAW_URI"] == "/caf%C3%A9/x%2Fy?q=%20"
    assert env["QUERY_STRING"] == "q=%20"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8000"
    assert env["REMOTE_ADDR"] == "10.0.0.7"
    assert env["REMOTE_PORT"] == "51000"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "4"
    assert env["HTTP_X_A"] == "1,2"
    assert env["wsgi.input"].read() == b"body"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.multithread"] is False
    assert env["SCRIPT_NAME"] == ""


def test_cookies_join_with_semicolons_and_underscores_are_dropped() -> None:
    env = environ(
        b"/", [(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x_forwarded_for", b"6.6.6.6")]
    )
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_FORWARDED_FOR" not in env


def test_environ_is_a_fresh_copy_each_time() -> None:
    first = environ(b"/", [])
    first["custom"] = 1
    assert "custom" not in environ(b"/", [])
    assert isinstance(first["wsgi.input"], io.BytesIO)


def test_scope() -> None:
    scope = build_scope(
        fields(b"GET", b"/a%20b?x=%41", [(b"host", b"h"), (b"x-y", b"z")]), {"db": 1}
    )
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=%41"
    assert scope["root_path"] == ""
    assert scope["headers"] == [(b"host", b"h"), (b"x-y", b"z")]
    assert scope["client"] == ("10.0.0.7", 51000)
    assert scope["server"] == ("127.0.0.1", 8000)
    assert scope["state"] == {"db": 1}


def test_scope_state_is_a_shallow_copy_per_request() -> None:
    state = {"db": 1}
    scope = build_scope(fields(b"GET", b"/", []), state)
    scope["state"]["extra"] = 2
    assert state == {"db": 1}


def test_scope_http10_and_unix_peer() -> None:
    prefix = codec.conn_prefix("http", None, None)
    payload = codec.encode_request(b"GET", b"/", b"1.0", prefix, [], b"")
    scope = build_scope(codec.decode_request(payload)[0], None)
    assert scope["http_version"] == "1.0"
    assert scope["client"] is None
    assert scope["server"] is None
    assert "state" not in scope


def test_absolute_form_without_path_keeps_its_query() -> None:
    """RFC 9112 §3.2.2 / RFC 3986 §3.2: in both the WSGI environ and the ASGI scope."""
    env = environ(b"http://example.org?x=1", [(b"host", b"example.org")])
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/", "x=1")
    scope = build_scope(
        fields(b"GET", b"http://example.org?x=1", [(b"host", b"example.org")]), None
    )
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/", b"/", b"x=1")
