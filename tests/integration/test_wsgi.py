"""PEP 3333 over the real server, with wsgiref's validator wrapped around the app."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import exchange
from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

SHARED_APP = "wsgi_validated:app"


@pytest.fixture(scope="module")
def client(shared_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


def test_environ(client: httpx.Client, shared_server: Server) -> None:
    r = client.get("/environ/caf%C3%A9?q=%20x", headers={"X-Dup": "a"})
    env = r.json()
    assert r.status_code == 200
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9"  # latin-1 decoding of the raw bytes
    assert env["QUERY_STRING"] == "q=%20x"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(shared_server.port)
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_X_DUP"] == "a"
    assert env["wsgi.url_scheme"] == "http"


def test_repeated_headers_are_joined(shared_server: Server) -> None:
    (r,) = exchange(
        shared_server.port, b"GET /environ HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
    )
    assert '"HTTP_X_A": "1,2"' in r.body.decode()


def test_input_readline_and_iteration(client: httpx.Client) -> None:
    r = client.post("/lines", content=b"one\ntwo\nthree")
    assert r.json() == {"readline": "one\n", "rest": ["two\n", "three"]}


def test_chunked_input(shared_server: Server) -> None:
    data = b"POST /lines HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na\nb\n\r\n1\r\nc\r\n0\r\n\r\n"
    (r,) = exchange(shared_server.port, data)
    assert r.body == b'{"readline": "a\\n", "rest": ["b\\n", "c"]}'


def test_write_callable(client: httpx.Client) -> None:
    assert client.get("/write").content == b"written and returned"


def test_file_wrapper(client: httpx.Client) -> None:
    r = client.get("/file")
    assert r.content == b"0123456789" * 10_000


def test_close_is_called(client: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    assert client.get("/closing", params={"f": str(marker)}).content == b"ab"
    assert marker.read_text() == "closed"  # close() ran before the response ended


def test_exc_info_replaces_the_response(client: httpx.Client) -> None:
    r = client.get("/exc-info")
    assert r.status_code == 503
    assert r.content == b"replaced"


@pytest.mark.parametrize(
    "path",
    [
        "/bad/str-body",
        "/bad/str-iterable",
        "/bad/header-name",
        "/bad/header-value",
        "/bad/twice",
        "/bad/none",
    ],
)
def test_bad_app_output_is_a_clean_500(
    client: httpx.Client, path: str, shared_server: Server
) -> None:
    r = client.get(path)
    assert r.status_code == 500
    assert client.get("/environ").status_code == 200


def test_threads_run_requests_concurrently(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--threads", "4", workers=1)
    with (
        httpx.Client(base_url=server.url, timeout=20) as client,
        concurrent.futures.ThreadPoolExecutor(4) as pool,
    ):
        started = time.monotonic()
        results = list(pool.map(lambda _: client.get("/sleep?s=1"), range(4)))
        elapsed = time.monotonic() - started
    assert [r.status_code for r in results] == [200] * 4
    assert elapsed < 3.5, f"4 one-second requests took {elapsed:.1f}s with 4 threads"
