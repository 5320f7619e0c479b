"""Request targets, Host and response framing as the app and the client see them.

The corpus (test_corpus_live) checks the statuses on both parsers; this checks
what reaches the app (WSGI environ, ASGI scope) and what goes out on the wire,
for the request-line and framing rules of issue 17, on both parsers.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import exchange
from tests.integration.conftest import Starter

pytestmark = pytest.mark.modes("process", "base")
PARSERS = pytest.mark.parametrize("parser", ["httptools", "h11"])


def get(port: int, target: bytes, host: bytes = b"example.com") -> dict:
    raw = b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, host)
    [response] = exchange(port, raw)
    assert response.status == 200, response
    return json.loads(response.body)


@PARSERS
def test_wsgi_environ(serve: Starter, parser: str) -> None:
    port = serve("wsgi_echo:app", "--http", parser, workers=1).port
    # RFC 9112 §3.2: a fragment is no part of the target; it never reaches the app
    env = get(port, b"/environ?x=1#frag")
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/environ", "x=1")
    env = get(port, b"/environ#frag")
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/environ", "")
    # RFC 9112 §3.2.2: the authority replaces Host; an empty path keeps its query
    env = get(port, b"http://other.example:8080/environ?x=1")
    assert (env["HTTP_HOST"], env["SERVER_NAME"]) == ("other.example:8080", "other.example")


@PARSERS
def test_asgi_scope(serve: Starter, parser: str) -> None:
    port = serve("asgi_echo:app", "--http", parser, workers=1).port
    scope = get(port, b"/scope?x=1#frag")
    assert (scope["path"], scope["query_string"]) == ("/scope", "x=1")
    scope = get(port, b"http://other.example/scope?y=2")
    assert (scope["path"], scope["query_string"]) == ("/scope", "y=2")
    assert ["host", "other.example"] in scope["headers"]


@pytest.mark.parametrize("app", ["wsgi_echo:app", "asgi_echo:app"])
def test_absolute_form_without_a_path_keeps_its_query(serve: Starter, app: str) -> None:
    """``GET http://example.org?x=1``: PATH_INFO "/" and the query "x=1" (it was lost)."""
    port = serve(app, workers=1).port
    raw = b"GET http://example.org?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    [response] = exchange(port, raw)
    assert response.status == 200, response
    assert (response.header("x-path"), response.header("x-query")) == ("/", "x=1")


@pytest.mark.parametrize("app", ["wsgi_echo:app", "asgi_echo:app"])
def test_content_length_dropped_from_a_204(serve: Starter, app: str) -> None:
    """RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204 response."""
    port = serve(app, workers=1).port
    raw = b"GET /status?code=204&cl=0 HTTP/1.1\r\nHost: x\r\n\r\n" * 2
    first, second = exchange(port, raw, count=2)
    assert first.status == second.status == 204
    assert first.header("content-length") is None, first.headers
    assert first.header("transfer-encoding") is None
    # a 304 may carry the length of the 200 it stands for: kept as the app set it
    raw = b"GET /status?code=304&cl=7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    [response] = exchange(port, raw, head_request=True)
    assert (response.status, response.header("content-length")) == (304, "7")
