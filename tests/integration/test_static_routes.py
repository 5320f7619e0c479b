"""Every road to a static file: HTTP/2 streams (static files and the app's file responses,
which used to fall through to the app or lose their body) and absolute-form request
targets (``GET http://host/static/x HTTP/1.1``, which used to fall through to the app)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
from h2.errors import ErrorCodes

from tests.integration.conftest import Server, Starter
from tests.integration.test_http2 import Raw, client, raws  # noqa: F401
from tests.integration.test_listeners import Certs, certs, tls_args  # noqa: F401
from tests.integration.test_static import ENV, RANDOM, ROOT, STATIC

pytestmark = pytest.mark.modes("process", "base", "reactors")

H2C = ("--http2", "on")
RANDOM_SHA = hashlib.sha256(RANDOM).hexdigest()


async def _gets(server: Server, *requests: tuple[str, dict[str, str]]) -> list[httpx.Response]:
    async with client(server) as c:
        return list(await asyncio.gather(*(c.get(p, headers=h) for p, h in requests)))


@pytest.fixture
def h2_server(serve: Starter) -> Server:
    return serve("file_app:app", *STATIC, *H2C, workers=1, env=ENV)


def test_static_files_over_http2(h2_server: Server) -> None:
    """Four streams of one connection at once, answered by the static handler: the large
    file whole and intact, a small one, a range and a revalidation."""
    small = (ROOT / "hello.txt").read_bytes()
    etag = httpx.get(h2_server.url + "/static/hello.txt", timeout=10).headers["etag"]
    big, hello, part, revalidated = asyncio.run(
        _gets(
            h2_server,
            ("/static/random.bin", {}),
            ("/static/hello.txt", {}),
            ("/static/random.bin", {"range": "bytes=1000-1999"}),
            ("/static/hello.txt", {"if-none-match": etag}),
        )
    )
    assert {r.http_version for r in (big, hello, part, revalidated)} == {"HTTP/2"}
    assert big.status_code == 200
    assert hashlib.sha256(big.content).hexdigest() == RANDOM_SHA
    assert big.headers["content-length"] == str(len(RANDOM))
    assert "etag" in big.headers
    assert (hello.status_code, hello.content) == (200, small)
    assert hello.headers["content-type"] == "text/plain; charset=utf-8"
    assert (part.status_code, part.content) == (206, RANDOM[1000:2000])
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(RANDOM)}"
    assert (revalidated.status_code, revalidated.content) == (304, b"")


def test_http2_static_head_and_fallthrough(h2_server: Server) -> None:
    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(h2_server) as c:
            head = await c.head("/static/random.bin")
            missing = await c.get("/static/nothing-here.txt")
            post = await c.post("/static/hello.txt", content=b"x")
            return head, missing, post

    head, missing, post = asyncio.run(run())
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(RANDOM))
    assert missing.text == "app: /static/nothing-here.txt"  # the app's, not a 404 of ours
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("app", ["file_app:app", "file_app:asgi"])
def test_app_file_responses_over_http2(serve: Starter, app: str) -> None:
    """wsgi.file_wrapper and pathsend on an HTTP/2 stream: the body arrives whole (the
    reactor used to write it past the HTTP/2 framing), and streams beside it are served."""
    server = serve(app, *H2C, workers=2, env=ENV)
    first, skipped, other = asyncio.run(
        _gets(server, ("/file", {}), ("/file?skip=100", {}), ("/else", {}))
    )
    assert first.http_version == "HTTP/2"
    assert first.status_code == 200
    assert hashlib.sha256(first.content).hexdigest() == RANDOM_SHA
    if app == "file_app:app":  # WSGI: the wrapper starts where the file's offset was
        assert skipped.content == RANDOM[100:]
    assert other.text == "app: /else"


def _get(raw: Raw, stream_id: int, path: str) -> None:
    headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")]
    raw.h2.send_headers(stream_id, headers, end_stream=True)
    raw.flush()


def _descriptors_on(server: Server, path: Path) -> int:
    """How many descriptors the server's processes hold open on ``path``."""
    count = 0
    for pid in {server.pid, *server.children()}:
        fds = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    count += os.readlink(fd) == str(path)
    return count


def test_a_stalled_http2_static_download_is_reset_past_the_write_timeout(
    serve: Starter,
    raws: Callable[[int], Raw],  # noqa: F811
) -> None:
    server = serve("file_app:app", *STATIC, *H2C, "--write-timeout", "1", workers=1, env=ENV)
    raw = raws(server.port)
    raw.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    _get(raw, 1, "/static/random.bin")
    events = raw.events_until(h2.events.StreamReset)
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(1, ErrorCodes.CANCEL)]
    # the download's descriptor was closed with the stream (before its RST_STREAM was
    # written): only the open-file cache's own is left
    assert _descriptors_on(server, ROOT / "random.bin") == 1
    # the connection goes on, and so does the static handler on it
    raw.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    _get(raw, 3, "/static/hello.txt")
    events = raw.events_until(h2.events.StreamEnded)
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == (ROOT / "hello.txt").read_bytes()


def test_static_and_file_responses_over_http2_on_tls(
    serve: Starter,
    certs: Certs,  # noqa: F811
) -> None:
    """ALPN h2: the static file and the app's file response, both through TLS and HTTP/2."""
    server = serve("file_app:app", *STATIC, *H2C, *tls_args(certs), workers=1, env=ENV)
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(verify=ctx, http2=True, http1=False, timeout=30) as c:
            return list(
                await asyncio.gather(
                    c.get(server.url + "/static/random.bin"), c.get(server.url + "/file")
                )
            )

    static, app_file = asyncio.run(run())
    assert (static.http_version, app_file.http_version) == ("HTTP/2", "HTTP/2")
    assert hashlib.sha256(static.content).hexdigest() == RANDOM_SHA
    assert hashlib.sha256(app_file.content).hexdigest() == RANDOM_SHA


# -- absolute-form request targets (RFC 9112 §3.2.2) ------------------------------------


def _raw_http11(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_absolute_form_targets_reach_the_static_handler(serve: Starter, parser: str) -> None:
    server = serve("file_app:app", *STATIC, "--http", parser, workers=1, env=ENV)
    hello = (ROOT / "hello.txt").read_bytes()
    got = _raw_http11(
        server.port,
        b"GET http://example.test/static/hello.txt?v=1 HTTP/1.1\r\nHost: other\r\n\r\n"
        b"GET http://example.test:8080/static/random.bin HTTP/1.1\r\nHost: x\r\n"
        b"Range: bytes=0-9\r\n\r\n"
        b"GET http://example.test/static/%2e%2e/outside-secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET http://example.test/static/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, rest = got.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200"), got[:300]
    assert rest.startswith(hello)
    rest = rest[len(hello) :]
    second, rest = rest.split(b"\r\n\r\n", 1)
    assert second.startswith(b"HTTP/1.1 206"), second
    assert rest.startswith(RANDOM[:10])
    third = rest[10:]
    assert third.startswith(b"HTTP/1.1 400"), third[:200]  # the traversal is refused
    assert b"TOPSECRET" not in got
    assert third.endswith(b"\r\n\r\napp: /static/nothing")  # a missing file: the app's
