"""--static: files answered by the reactor (process mode) or the worker's loop (base mode),
never by the app, checked with real clients: httpx, curl and raw sockets."""

from __future__ import annotations

import atexit
import gzip
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

SITE = Path(tempfile.mkdtemp(prefix="swserve-static-test-"))
atexit.register(shutil.rmtree, SITE, True)
OUTSIDE = SITE / "outside-secret.txt"
ROOT = SITE / "root"
CSS = b"body { color: red }\n" * 50
RANDOM = os.urandom(3 * 1024 * 1024 + 17)
GZ = gzip.compress(CSS, mtime=0)


def _build() -> None:
    (ROOT / "css").mkdir(parents=True)
    (ROOT / "css" / "app.css").write_bytes(CSS)
    (ROOT / "css" / "app.css.gz").write_bytes(GZ)
    (ROOT / "css" / "app.css.br").write_bytes(b"pretend-brotli")
    (ROOT / "css" / "app.0123abcd89ef.css").write_bytes(CSS)
    (ROOT / "hello.txt").write_bytes(b"hello, static\n")
    (ROOT / "random.bin").write_bytes(RANDOM)
    (ROOT / ".env").write_bytes(b"TOPSECRET")
    (ROOT / "docs").mkdir()
    (ROOT / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    OUTSIDE.write_bytes(b"TOPSECRET")
    (ROOT / "escape").symlink_to(OUTSIDE)
    (ROOT / "escapedir").symlink_to(SITE)
    (ROOT / "inside").symlink_to(ROOT / "hello.txt")
    (ROOT / "null").symlink_to("/dev/zero")
    os.mkfifo(ROOT / "fifo")


_build()
STATIC = ("--static", f"/static={ROOT}", "--static-index", "index.html")
SHARED_APP = "file_app:app"
SHARED_ARGS = (*STATIC, "--static-immutable")
ENV = {"FILE_APP_PATH": str(ROOT / "random.bin")}


def _get(server: Server, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + path, headers=headers, timeout=10)


# -- the rules -----------------------------------------------------------------------------


def test_get(shared_server: Server) -> None:
    r = _get(shared_server, "/static/hello.txt")
    assert r.status_code == 200
    assert r.content == b"hello, static\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == "14"
    assert r.headers["etag"].startswith('"')
    assert r.headers["last-modified"].endswith("GMT")
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["accept-ranges"] == "bytes"
    assert "vary" not in r.headers
    big = _get(shared_server, "/static/random.bin")
    assert big.content == RANDOM
    assert big.headers["content-type"] == "application/octet-stream"


def test_head(shared_server: Server) -> None:
    r = httpx.head(shared_server.url + "/static/random.bin", timeout=10)
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(RANDOM))


def test_conditional_requests(shared_server: Server) -> None:
    first = _get(shared_server, "/static/hello.txt")
    tag, last = first.headers["etag"], first.headers["last-modified"]
    r = _get(shared_server, "/static/hello.txt", **{"if-none-match": tag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == tag
    r = _get(shared_server, "/static/hello.txt", **{"if-modified-since": last})
    assert r.status_code == 304
    r = _get(shared_server, "/static/hello.txt", **{"if-none-match": '"stale"'})
    assert r.status_code == 200
    assert r.content == b"hello, static\n"
    r = _get(
        shared_server, "/static/hello.txt", **{"if-modified-since": "Mon, 01 Jan 1990 00:00:00 GMT"}
    )
    assert r.status_code == 200


def test_ranges(shared_server: Server) -> None:
    r = _get(shared_server, "/static/random.bin", range="bytes=100-199")
    assert r.status_code == 206
    assert r.content == RANDOM[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(RANDOM)}"
    r = _get(shared_server, "/static/random.bin", range="bytes=-1000000")
    assert r.status_code == 206
    assert r.content == RANDOM[-1000000:]
    r = _get(shared_server, "/static/random.bin", range=f"bytes={len(RANDOM)}-")
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(RANDOM)}"
    r = _get(shared_server, "/static/random.bin", range="bytes=0-1,10-20")
    assert r.status_code == 200
    assert r.content == RANDOM
    tag = r.headers["etag"]
    r = _get(shared_server, "/static/random.bin", range="bytes=0-9", **{"if-range": tag})
    assert r.status_code == 206
    assert r.content == RANDOM[:10]
    r = _get(shared_server, "/static/random.bin", range="bytes=0-9", **{"if-range": '"old"'})
    assert r.status_code == 200


def test_precompressed(shared_server: Server) -> None:
    url = shared_server.url + "/static/css/app.css"
    with httpx.Client(timeout=10) as client:
        # httpx would decode: read the raw stream
        for accept, coding, body in (
            ("gzip, br", "br", b"pretend-brotli"),
            ("gzip", "gzip", GZ),
            ("identity", None, CSS),
        ):
            with client.stream("GET", url, headers={"accept-encoding": accept}) as r:
                raw = b"".join(r.iter_raw())
            assert r.headers.get("content-encoding") == coding
            assert r.headers["vary"] == "Accept-Encoding"
            assert r.headers["content-type"] == "text/css; charset=utf-8"
            assert raw == body


def test_immutable_for_hashed_names(shared_server: Server) -> None:
    r = _get(shared_server, "/static/css/app.0123abcd89ef.css")
    assert r.headers["cache-control"] == "public, max-age=315360000, immutable"


def test_other_methods_get_405(shared_server: Server) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        r = httpx.request(method, shared_server.url + "/static/hello.txt", timeout=10)
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"


def test_missing_files_fall_through_to_the_app(shared_server: Server) -> None:
    r = _get(shared_server, "/static/missing.js")
    assert r.status_code == 200
    assert r.content == b"app: /static/missing.js"
    assert _get(shared_server, "/elsewhere").content == b"app: /elsewhere"
    assert _get(shared_server, "/staticfoo").content == b"app: /staticfoo"


def test_index_and_no_listing(shared_server: Server) -> None:
    r = _get(shared_server, "/static/docs/")
    assert r.status_code == 200
    assert r.content == b"<h1>docs</h1>"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    r = _get(shared_server, "/static/docs?x=1")
    assert r.status_code == 301
    assert r.headers["location"] == "/static/docs/?x=1"
    r = _get(shared_server, "/static/css/")  # a directory without an index: not found here
    assert r.content == b"app: /static/css/"


@pytest.mark.parametrize("name", [".env", "escape", "escapedir/outside-secret.txt", "null", "fifo"])
def test_refused_files(shared_server: Server, name: str) -> None:
    r = _get(shared_server, "/static/" + name)
    assert r.status_code == 404
    assert b"TOPSECRET" not in r.content


def test_symlink_inside_is_served(shared_server: Server) -> None:
    assert _get(shared_server, "/static/inside").content == b"hello, static\n"


def test_curl(shared_server: Server) -> None:
    url = shared_server.url + "/static/random.bin"
    out = subprocess.run(
        ["curl", "-s", "-r", "5-14", url], capture_output=True, check=True, timeout=20
    ).stdout
    assert out == RANDOM[5:15]
    head = subprocess.run(
        ["curl", "-s", "-I", url], capture_output=True, check=True, timeout=20
    ).stdout
    assert head.startswith(b"HTTP/1.1 200")
    assert b"etag:" in head.lower()


# -- traversal, on both parsers --------------------------------------------------------------

TRAVERSAL = [
    "/static/../outside-secret.txt",
    "/static/%2e%2e/outside-secret.txt",
    "/static/%2E%2E/outside-secret.txt",
    "/static/.%2e/outside-secret.txt",
    "/static/..%2foutside-secret.txt",
    "/static/%2e%2e%2foutside-secret.txt",
    "/static/..%5coutside-secret.txt",
    "/static/..\\outside-secret.txt",
    "/static/%c0%ae%c0%ae/outside-secret.txt",
    "/static/%c0%ae%c0%ae%c0%afoutside-secret.txt",
    "/static/%e0%80%ae%e0%80%ae/outside-secret.txt",
    "/static/hello.txt%00.css",
    "/static//..//outside-secret.txt",
    "/static/./../outside-secret.txt",
    "/static/css/../../outside-secret.txt",
    "/static/escape",
    "/static/escapedir/outside-secret.txt",
    "/static/.env",
    "/static/%2eenv",
    "/static/%2Eenv",
]
# the same through a proxy's absolute-form target (RFC 9112 §3.2.2): the static handler's,
# not the app's (which would answer them all with 200)
TRAVERSAL += [f"http://example.test{target}" for target in TRAVERSAL]


def _raw(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_traversal_corpus(serve: Starter, parser: str) -> None:
    server = serve(SHARED_APP, *STATIC, "--no-static-fallthrough", "--http", parser, workers=1)
    for target in TRAVERSAL:
        response = _raw(server.port, target)
        status = response.split(b" ", 2)[1]
        assert status in (b"400", b"404"), (target, response[:200])
        assert b"TOPSECRET" not in response, target
    # the same server still serves what it should
    assert _raw(server.port, "/static/hello.txt").endswith(b"hello, static\n")


def test_no_fallthrough(serve: Starter) -> None:
    server = serve(SHARED_APP, *STATIC, "--no-static-fallthrough", workers=1)
    r = _get(server, "/static/missing.js")
    assert r.status_code == 404
    assert _get(server, "/elsewhere").content == b"app: /elsewhere"


def test_bad_static_setting_is_one_line(serve: Starter) -> None:
    server = serve(SHARED_APP, "--static", f"/s={SITE / 'nope'}", wait=False)
    server.expected_exit = 1
    assert server.wait_exit(30) == 1
    assert "is not a directory" in "\n".join(server.stderr)
    assert "Traceback" not in "\n".join(server.stderr)
