"""Real frameworks behind the real server: Flask, Django (WSGI and ASGI) and FastAPI.

The three apps (tests/integration/apps/{flask,django,fastapi}_app.py) answer
the same routes the same way, so every test here runs against every target.
One server per target, shared by the module (pytest groups the tests by the
module-scoped parameter, so each server starts once); its teardown stops it
with SIGTERM and checks it exits 0 without having logged a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader, connect, exchange
from tests.integration.conftest import Server, Starter, swserve_args

pytestmark = pytest.mark.modes("process", "base", "h11")

TIMEOUT = httpx.Timeout(20.0)
UNICODE = "héllo wörld ✓ 日本"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    id: str
    app: str
    framework: str
    args: tuple[str, ...] = ()


TARGETS = [
    # --threads 4: the WSGI thread-pool worker; django-wsgi gets the blocking one.
    Target("flask-wsgi", "flask_app:app", "flask", ("--interface", "wsgi", "--threads", "4")),
    Target("django-wsgi", "django_app:application", "django"),
    # interface auto-detected: Django's ASGIHandler has an async __call__; Django
    # refuses the lifespan scope, which --lifespan auto tolerates.
    Target("django-asgi", "django_app:asgi_application", "django"),
    Target("fastapi-asgi", "fastapi_app:app", "fastapi", ("--lifespan", "on")),
]


def stream_chunk(i: int) -> bytes:
    """What the apps' /stream yields as chunk ``i``."""
    return f"{i:05d}".encode() * 200 + b"\n"


@dataclass
class Live:
    target: Target
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, *, follow_redirects: bool = False) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=TIMEOUT, follow_redirects=follow_redirects)


def _stop(server: Server) -> int | None:
    """Stop the server and close its pipes.

    conftest's Server never closes them, and an unclosed pipe found by the
    garbage collector is a ResourceWarning, an error in whatever test runs then.
    """
    code = server.stop()
    for pipe in (server.proc.stdout, server.proc.stderr):
        if pipe is not None:
            pipe.close()
    return code


@pytest.fixture(scope="module", params=TARGETS, ids=[t.id for t in TARGETS])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mode: str
) -> Iterator[Live]:
    target: Target = request.param
    files = tmp_path_factory.mktemp(target.id)  # where the apps write /download's files
    server = Server(
        swserve_args(target.app, *target.args, workers=2, mode=mode),
        env={"FRAMEWORK_APP_FILES": str(files)},
    )
    try:
        server.wait_ready()
        yield Live(target, server)
    finally:
        code = _stop(server)
        problems = []
        if code != 0:
            problems.append(f"exited with {code}")
        if any("Traceback" in line for line in server.stderr):
            problems.append("logged a traceback")
        if problems:
            pytest.fail(f"{target.id}: swserve {' and '.join(problems)}\n{server.logs()}")


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c


# ---------------------------------------------------------------- JSON


def test_json_get(live: Live, client: httpx.Client) -> None:
    response = client.get("/json", params={"q": "a b&c=d/é"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    # Django's WSGI HttpResponse is an iterable without a length and without
    # Content-Length (no CommonMiddleware), so chunked framing is legitimate there.
    if "content-length" in response.headers:
        assert int(response.headers["content-length"]) == len(response.content)
        assert "transfer-encoding" not in response.headers
    else:
        assert response.headers["transfer-encoding"] == "chunked"
    assert response.json() == {
        "framework": live.target.framework,
        "message": "hello",
        "unicode": UNICODE,
        "numbers": [1, 2, 3],
        "q": "a b&c=d/é",
    }


# ---------------------------------------------------------------- forms


def test_form_post(client: httpx.Client) -> None:
    fields = {"name": "Zoë & Co = 100% + more", "lang": "日本語\nline two"}
    response = client.post("/form", data=fields)
    assert response.status_code == 200, response.text
    assert response.json() == fields


def test_form_post_empty_fields(client: httpx.Client) -> None:
    response = client.post("/form", data={"name": "", "lang": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["lang"] == "x"
    assert response.json()["name"] in ("", None)  # FastAPI treats an empty field as missing


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(5 * MIB, id="5MiB"),
        # above MAX_PAYLOAD // 2: the reactor splits the body over several frames
        pytest.param(12 * MIB + 7, id="12MiB"),
    ],
)
def test_multipart_upload(client: httpx.Client, size: int) -> None:
    data = os.urandom(size)
    response = client.post(
        "/upload",
        files={"file": ("random data.bin", data, "application/octet-stream")},
        data={"note": "ünïcode note"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "random data.bin",
        "size": size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "ünïcode note",
    }


def test_small_upload(client: httpx.Client) -> None:
    data = b"--not-a-boundary\r\n\r\n" * 3 + bytes(range(256))
    response = client.post("/upload", files={"file": ("tiny.bin", data)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["size"], body["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def _multipart(boundary: str, filename: str, data: bytes) -> list[bytes]:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        f"streamed\r\n--{boundary}--\r\n"
    ).encode()
    parts = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    return [head, *parts, tail]


def test_chunked_request_upload(live: Live, client: httpx.Client) -> None:
    """A request body sent with Transfer-Encoding: chunked (no Content-Length)."""
    if live.target.id == "django-asgi":
        # Django's ASGIRequest parses a body only as far as the Content-Length
        # header says (0 when absent); a limitation of Django, not of the server.
        pytest.skip("Django under ASGI needs a Content-Length to parse a form")
    data = os.urandom(1 * MIB + 3)
    boundary = "swserve-boundary-7f3a"
    response = client.post(
        "/upload",
        content=iter(_multipart(boundary, "chunked.bin", data)),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "chunked.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "streamed",
    }


def test_upload_with_expect_100_continue(live: Live) -> None:
    """curl's way: send the head, wait for 100 Continue, then the body."""
    data = os.urandom(2 * MIB)
    boundary = "curl-like-boundary"
    body = b"".join(_multipart(boundary, "expect.bin", data))
    head = (
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary.encode() + b"\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )
    with connect(live.server.port) as sock:
        sock.sendall(head)
        reader = ResponseReader(sock)
        interim = reader.read()
        assert interim.status == 100
        sock.sendall(body)
        response = reader.read()
    assert response.status == 200, response.body
    assert json.loads(response.body) == {
        "filename": "expect.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "streamed",
    }


# ---------------------------------------------------------------- big responses


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="empty"),
        pytest.param(3 * MIB + 1, id="3MiB"),
        # above MAX_PAYLOAD (16 MiB): the worker splits the body over several frames
        pytest.param(17 * MIB + 5, id="17MiB"),
    ],
)
def test_big_response(client: httpx.Client, size: int) -> None:
    seed = size + 11
    response = client.get("/big", params={"size": size, "seed": seed})
    assert response.status_code == 200
    assert len(response.content) == size
    expected = random.Random(seed).randbytes(size)  # the apps' big_body()
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(expected).digest()
    if "content-length" in response.headers:
        assert int(response.headers["content-length"]) == size


def test_file_download(client: httpx.Client) -> None:
    """send_file / FileResponse: WSGI apps hand the file to wsgi.file_wrapper."""
    size, seed = 3 * MIB + 17, 5
    response = client.get("/download", params={"size": size, "seed": seed})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == size
    assert "transfer-encoding" not in response.headers
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="?data\.bin"?', disposition), disposition
    expected = random.Random(seed).randbytes(size)
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(expected).digest()


def test_file_download_range(client: httpx.Client) -> None:
    size, seed = 1 * MIB, 9
    expected = random.Random(seed).randbytes(size)
    response = client.get(
        "/download", params={"size": size, "seed": seed}, headers={"Range": "bytes=1000-1999"}
    )
    if response.status_code == 200:  # Django's FileResponse ignores Range
        assert response.content == expected
        return
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 1000-1999/{size}"
    assert int(response.headers["content-length"]) == 1000
    assert response.content == expected[1000:2000]


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("count", [1, 10, 300])
def test_streaming_response(client: httpx.Client, count: int) -> None:
    expected = b"".join(stream_chunk(i) for i in range(count))
    with client.stream("GET", "/stream", params={"n": count}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        body = b"".join(response.iter_raw())
    assert body == expected


def test_streaming_wire_framing(live: Live) -> None:
    """The chunked framing is exact (a strict reader), and keep-alive survives it."""
    request = b"GET /stream?n=25 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    first, second = exchange(live.server.port, request * 2, count=2)
    expected = b"".join(stream_chunk(i) for i in range(25))
    for response in (first, second):
        assert response.status == 200
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("content-length") is None
        assert response.body == expected


def _session_rss(server: Server) -> int:
    """Resident memory of all the server's processes together, in bytes."""
    total = 0
    for pid in server.children():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def test_slow_reader_does_not_make_the_server_buffer_the_stream(live: Live) -> None:
    """A client that stops reading a 200 MB stream must not cost the server 200 MB.

    Either the app is held back (ASGI ``send`` waits, a WSGI worker blocks on
    its write) or the server bounds what it keeps for that client; buffering
    the whole response in the reactor lets any slow client exhaust memory.
    The app prints a line when it has handed over its last chunk: that line
    arriving means nothing held it back.
    """
    server = live.server
    tag = f"slow-{live.target.id}"
    start = len(server.stdout)
    before = _session_rss(server)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /stream?n=200000&tag=%s HTTP/1.1\r\nHost: x\r\n\r\n" % tag.encode())
        assert sock.recv(1)  # the response has started; now stop reading
        try:
            server.wait_for(f"stream finished tag={tag}$", 5.0, stream="stdout", start=start)
        except AssertionError:
            pass  # still held back after 5 s: back-pressure works
        grown = _session_rss(server) - before
    finally:
        sock.close()
    assert grown < 64 * MIB, (
        f"the server's memory grew by {grown // MIB} MiB for one unread 200 MB response"
    )


def test_empty_stream(client: httpx.Client) -> None:
    response = client.get("/stream", params={"n": 0})
    assert response.status_code == 200
    assert response.content == b""


# ---------------------------------------------------------------- cookies


def test_cookie_round_trip(live: Live) -> None:
    with live.client() as c:
        assert c.get("/whoami").json() == {"session": None, "theme": None}
        response = c.get("/cookie", params={"value": "alice"})
        assert response.status_code == 200
        # two cookies: two separate Set-Cookie fields (they must never be joined)
        set_cookies = response.headers.get_list("set-cookie")
        assert len(set_cookies) == 2, set_cookies
        session = next(v for v in set_cookies if v.startswith("session="))
        assert re.match(r"session=\"?alice\"?;", session), session
        assert "httponly" in session.lower()
        assert any(v.startswith("theme=dark") for v in set_cookies), set_cookies
        assert c.get("/whoami").json() == {"session": "alice", "theme": "dark"}
        c.get("/cookie", params={"value": "bob"})
        assert c.get("/whoami").json() == {"session": "bob", "theme": "dark"}
    with live.client() as fresh:
        assert fresh.get("/whoami").json() == {"session": None, "theme": None}


def test_big_cookie_round_trip(live: Live) -> None:
    """A 4000-byte cookie (browsers' usual limit) goes out and comes back whole."""
    value = "".join(
        random.Random(3).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4000)
    )
    with live.client() as c:
        assert c.get("/cookie", params={"value": value}).status_code == 200
        assert c.get("/whoami").json() == {"session": value, "theme": "dark"}


def test_cookie_header_with_several_cookies(client: httpx.Client) -> None:
    response = client.get("/whoami", headers={"Cookie": "a=1; session=carol; theme=light; b=2"})
    assert response.json() == {"session": "carol", "theme": "light"}


def test_repeated_cookie_fields_are_combined(live: Live) -> None:
    """Two Cookie header lines (HTTP/2-to-1 proxies send these) reach the app as one list."""
    if live.target.id == "django-asgi":
        # The ASGI scope keeps repeated fields apart, as the spec asks; Django's
        # ASGIRequest then joins them with "," (not "; "), a limitation of Django.
        pytest.skip("Django under ASGI joins repeated Cookie fields with ','")
    request = (
        b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n"
        b"Cookie: session=dave\r\nCookie: theme=blue\r\nConnection: close\r\n\r\n"
    )
    (response,) = exchange(live.server.port, request)
    assert response.status == 200
    assert json.loads(response.body) == {"session": "dave", "theme": "blue"}


# ---------------------------------------------------------------- redirects


def test_redirect_not_followed(client: httpx.Client) -> None:
    response = client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] in ("/json", f"{client.base_url}json")


def test_redirect_followed(live: Live) -> None:
    with live.client(follow_redirects=True) as c:
        response = c.get("/redirect")
    assert response.status_code == 200
    assert response.url.path == "/json"
    assert [r.status_code for r in response.history] == [302]
    assert response.json()["framework"] == live.target.framework


# ---------------------------------------------------------------- concurrency


def _one_request(url: str, i: int) -> None:
    """One request of a kind picked by ``i``, checked end to end (no cross-talk)."""
    with httpx.Client(base_url=url, timeout=TIMEOUT) as c:
        kind = i % 4
        if kind == 0:
            response = c.get("/json", params={"q": f"req-{i}"})
            assert response.status_code == 200, response.text
            assert response.json()["q"] == f"req-{i}"
        elif kind == 1:
            response = c.post("/form", data={"name": f"name-{i}", "lang": f"lang-{i}"})
            assert response.status_code == 200, response.text
            assert response.json() == {"name": f"name-{i}", "lang": f"lang-{i}"}
        elif kind == 2:
            data = os.urandom(256 * 1024 + i)
            response = c.post("/upload", files={"file": (f"f{i}.bin", data)})
            assert response.status_code == 200, response.text
            assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
            assert response.json()["filename"] == f"f{i}.bin"
        else:
            response = c.get("/stream", params={"n": 20 + i})
            assert response.status_code == 200
            assert response.content == b"".join(stream_chunk(j) for j in range(20 + i))


def test_concurrent_requests(live: Live) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(_one_request, live.url, i) for i in range(20)]
        for future in futures:
            future.result(timeout=40)


def test_keep_alive_sequence(client: httpx.Client) -> None:
    """Many mixed requests on one pooled connection."""
    for i in range(40):
        if i % 2:
            response = client.post("/form", data={"name": str(i), "lang": "x"})
            assert response.json() == {"name": str(i), "lang": "x"}
        else:
            response = client.get("/stream", params={"n": 3})
            assert response.content == b"".join(stream_chunk(j) for j in range(3))


# ---------------------------------------------------------------- FastAPI lifespan


def test_fastapi_lifespan_runs_in_every_worker(serve: Starter) -> None:
    server = serve("fastapi_app:app", "--lifespan", "on", workers=2)
    pids = set()
    try:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
            for _ in range(10):
                response = c.get("/lifespan")
                assert response.status_code == 200
                body = response.json()
                assert body["started"] is True
                pids.add(body["pid"])
    finally:
        code = _stop(server)
    assert code == 0, server.logs()
    startups = [line for line in server.stdout if "fastapi lifespan startup" in line]
    shutdowns = [line for line in server.stdout if "fastapi lifespan shutdown" in line]
    assert len(startups) == 2, server.logs()
    assert len(shutdowns) == 2, server.logs()
    served = {int(line.rsplit("=", 1)[1]) for line in shutdowns}
    assert pids <= served, server.logs()


# ---------------------------------------------------------------- worker exit


def test_app_atexit_handlers_run_on_graceful_shutdown(serve: Starter) -> None:
    """After SIGTERM every worker exits like a Python program: atexit handlers run."""
    server = serve("flask_app:app", workers=2)
    try:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
            assert c.get("/json").status_code == 200
    finally:
        code = _stop(server)
    assert code == 0, server.logs()
    lines = [line for line in server.stdout if "flask_app atexit" in line]
    assert len(lines) == 2, f"atexit ran in {len(lines)} of 2 workers\n{server.logs()}"
