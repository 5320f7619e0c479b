"""An app's body that does not match its own Content-Length never desyncs the connection.

Too long: the client would read the excess as the start of the next response.
Too short: the client would wait for bytes that never come.  WSGI: the excess
is dropped and a short body closes the connection (gunicorn's rules); ASGI:
send() raises, as in uvicorn, and the response is aborted (a close).
"""

from __future__ import annotations

import pytest

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Starter

pytestmark = pytest.mark.modes("process", "base")

GET = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


def read_raw(sock, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_wsgi_body_longer_than_its_content_length_is_cut(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=1)
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(GET % b"/cl-long")
        response = reader.read()
        assert (response.status, response.body) == (200, b"01234")
        sock.sendall(GET % b"/echo")  # the connection is still in step
        assert reader.read().status == 200
    server.wait_for("more body than its Content-Length")


def test_wsgi_body_shorter_than_its_content_length_closes(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=1)
    with connect(server.port) as sock:
        sock.sendall(GET % b"/cl-short")
        raw = read_raw(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 20" in head
    assert body == b"0123456789abc"  # 13 of 20 bytes, then the close says it is incomplete
    server.wait_for("13 bytes of body for a Content-Length of 20")


@pytest.mark.parametrize("path", [b"/cl-long", b"/cl-short"])
def test_asgi_body_not_matching_its_content_length_is_aborted(serve: Starter, path: bytes) -> None:
    server = serve("asgi_echo:app", workers=1)
    with connect(server.port) as sock:
        sock.sendall(GET % path)
        raw = read_raw(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    if path == b"/cl-long":  # refused before a byte of it was sent: a clean 500
        assert head.startswith(b"HTTP/1.1 500")
        assert body == b"500 Internal Server Error\n"
    else:
        assert body == b"0123456789"  # what fit, then the close
    server.wait_for("Content-Length")
