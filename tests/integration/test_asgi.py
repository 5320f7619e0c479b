"""ASGI 3.0 over the real server: scope, message order, streaming, disconnect, lifespan."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Server, Starter
from tests.integration.test_metrics import METRICS_ARGS, metrics_port, one, poll

pytestmark = pytest.mark.modes("process", "base", "reactors")

SHARED_APP = "asgi_echo:app"


@pytest.fixture(scope="module")
def client(shared_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


def test_scope(client: httpx.Client, shared_server: Server) -> None:
    r = client.get("/scope/a%20b?x=1&y=%41", headers={"X-Custom": "v1"})
    assert r.status_code == 200
    scope = r.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/a b"
    assert scope["raw_path"] == "/scope/a%20b"
    assert scope["query_string"] == "x=1&y=%41"
    assert scope["root_path"] == ""
    assert ["x-custom", "v1"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", shared_server.port]


def test_scope_path_is_only_scope_without_percent(client: httpx.Client) -> None:
    assert client.get("/scope").json()["path"] == "/scope"


def test_post_body(client: httpx.Client) -> None:
    data = b"x" * 300_000
    r = client.post("/echo", content=data)
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))


def test_streaming_is_chunked(client: httpx.Client) -> None:
    r = client.get("/stream")
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.content == b"one two three"


def test_head_gets_no_body(shared_server: Server) -> None:
    with connect(shared_server.port) as sock:
        sock.sendall(b"HEAD /pid HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = ResponseReader(sock)
        head = reader.read(head_request=True)
        body = reader.read()
        assert head.header("content-length") == str(len(body.body))


def test_app_error_is_500_and_logged(client: httpx.Client, shared_server: Server) -> None:
    assert client.get("/error").status_code == 500
    shared_server.wait_for("RuntimeError: boom")
    assert client.get("/pid").status_code == 200


def test_lifespan_state_reaches_requests(client: httpx.Client) -> None:
    assert client.get("/lifespan").text == "yes"


def test_many_concurrent_requests_on_one_worker(serve: Starter) -> None:
    """20 requests held inside one worker's app at once: they only finish together."""
    server = serve("asgi_echo:app", workers=1)
    with (
        httpx.Client(base_url=server.url, timeout=20) as client,
        concurrent.futures.ThreadPoolExecutor(20) as pool,
    ):
        results = list(pool.map(lambda _: client.get("/barrier?n=20"), range(20)))
    assert [r.status_code for r in results] == [200] * 20
    assert max(int(r.text) for r in results) == 20


def test_asgi_concurrency_bounds_the_requests_in_one_worker(
    serve: Starter, mode: str, tmp_path: Path
) -> None:
    """--asgi-concurrency 3: three requests in the app; the other six wait in the reactor."""
    server = serve("asgi_echo:app", "--asgi-concurrency", "3", *METRICS_ARGS, workers=1)
    port = metrics_port(server)
    release = tmp_path / "release"
    with (
        httpx.Client(base_url=server.url, timeout=40) as client,
        concurrent.futures.ThreadPoolExecutor(9) as pool,
    ):
        held = [pool.submit(client.get, f"/hold?f={release}") for _ in range(9)]
        server.wait_for_count("^hold: inside", 3, stream="stdout")
        if mode == "process":  # base mode: the six wait in the kernel, not in a queue
            poll(port, lambda s: one(s, "swserve_requests_queued") == 6, "six queued")
            # six queued in the reactor: only three ever got into the app
            assert len([line for line in server.stdout if line.startswith("hold:")]) == 3
        release.touch()
        peaks = [int(f.result().text) for f in held]
    assert max(peaks) == 3
    server.wait_for_count("^hold: inside", 9, stream="stdout")


def test_disconnect_reaches_the_app(serve: Starter, tmp_path: Path) -> None:
    server = serve("asgi_echo:app", workers=1)
    marker = tmp_path / "disconnected"
    sock = connect(server.port)
    sock.sendall(b"GET /disconnect?f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/pid").status_code == 200  # the request above has been dispatched
    sock.close()
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline, "the app never saw http.disconnect"
        time.sleep(0.01)  # polling a file with a deadline
    assert marker.read_text() == "disconnected"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/pid").status_code == 200  # and the worker's slot was freed


def test_receive_after_the_response_is_disconnect(client: httpx.Client) -> None:
    assert client.get("/after").text == "sent"
