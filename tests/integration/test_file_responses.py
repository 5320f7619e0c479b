"""An app's file responses (WSGI ``wsgi.file_wrapper``, ASGI ``http.response.pathsend``)
are streamed by the reactor from a descriptor the worker passed: the worker is free at once,
and no body byte crosses the IPC socket."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Starter
from tests.integration.test_static_load import metric, metrics_port, wait_metric

pytestmark = pytest.mark.modes("process", "base", "reactors")

SIZE = 100 * 1024 * 1024
MARKS = {0: b"first", 12345678: b"middle", SIZE - 4: b"last"}


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A sparse 100 MiB file with a few marks, and its sha256."""
    path = tmp_path_factory.mktemp("files") / "big.bin"
    with path.open("wb") as f:
        f.truncate(SIZE)
        for offset, mark in MARKS.items():
            f.seek(offset)
            f.write(mark)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return path, digest.hexdigest()


def _start_download(port: int) -> tuple[socket.socket, bytes]:
    """A client that asks for the file and reads only its first bytes, for now."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert f"content-length: {SIZE}".encode() in head.lower()
    return sock, head.split(b"\r\n\r\n", 1)[1]


def _finish_download(download: tuple[socket.socket, bytes]) -> str:
    sock, first = download
    digest = hashlib.sha256(first)
    got = len(first)
    buf = bytearray(1 << 20)
    while got < SIZE:
        n = sock.recv_into(buf)
        assert n, f"closed after {got} bytes"
        digest.update(memoryview(buf)[:n])
        got += n
    sock.close()
    return digest.hexdigest()


@pytest.mark.parametrize("app", ["file_app:app", "file_app:asgi"])
def test_file_response_frees_the_worker_and_skips_ipc(
    serve: Starter, mode: str, big_file: tuple[Path, str], app: str
) -> None:
    path, sha = big_file
    server = serve(
        app,
        "--metrics-bind",
        "127.0.0.1:0",
        workers=1,
        env={"FILE_APP_PATH": str(path)},
    )
    metrics = metrics_port(server)
    pid = httpx.get(server.url + "/pid", timeout=10).text
    ipc_before = metric(metrics, "swserve_ipc_bytes_received_total")
    download = _start_download(server.port)
    # the download is far from done (the client has read only its head), and the only
    # worker answers the next request at once
    # (were the worker still sending, this would wait for a client that is not reading)
    assert httpx.get(server.url + "/pid", timeout=10).text == pid
    assert _finish_download(download) == sha, "the body differs from the file"
    if mode != "base":
        # no body byte crossed the IPC socket: heartbeats and a few frames only
        assert wait_metric(metrics, "swserve_file_responses_total", 1) == 1
        ipc = metric(metrics, "swserve_ipc_bytes_received_total") - ipc_before
        assert ipc < 64 * 1024, f"{ipc} bytes crossed the IPC socket for a {SIZE}-byte body"
    else:  # base mode: the worker's own loop sent it, and counted it
        assert wait_metric(metrics, "swserve_file_responses_total", 1) == 1


def test_file_response_offset_and_head(serve: Starter, big_file: tuple[Path, str]) -> None:
    path, _ = big_file
    server = serve("file_app:app", workers=1, env={"FILE_APP_PATH": str(path)})
    r = httpx.get(server.url + "/file?skip=12345678", headers={"range": "x"}, timeout=30)
    assert len(r.content) == SIZE - 12345678
    assert r.content.startswith(b"middle")
    assert r.content.endswith(b"last")
    r = httpx.head(server.url + "/file", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(SIZE)
