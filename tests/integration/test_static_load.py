"""--static under load and at the edges: 1,000 concurrent downloads with the reactor's RSS
measured, a client that stops reading (--write-timeout), TLS, and the counters."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, Starter
from tests.integration.test_listeners import Certs, certs, tls_args  # noqa: F401
from tests.integration.test_static import RANDOM, ROOT, SHARED_APP, STATIC

pytestmark = pytest.mark.modes("process", "base")

HUGE = 1 << 30  # sparse: no disk, and the page cache holds zero pages


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("huge")
    with (root / "huge.bin").open("wb") as f:
        f.truncate(HUGE)
    return root


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _serving_pid(server: Server, mode: str) -> int:
    """The process that writes to clients: the master's reactor, or the only base worker."""
    if mode == "process":
        return server.pid
    workers = [pid for pid, title in server.children().items() if "worker" in title]
    assert len(workers) == 1, server.children()
    return workers[0]


def metrics_port(server: Server) -> int:
    return int(server.wait_for(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))


def metric(port: int, name: str) -> int:
    """One unlabelled sample of the server's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    assert match is not None, text
    return int(match.group(1))


def wait_metric(port: int, name: str, least: int) -> int:
    """Poll until the sample reaches ``least`` (base-mode workers report every 0.1-1 s)."""
    deadline = time.monotonic() + 10
    while (value := metric(port, name)) < least:
        assert time.monotonic() < deadline, f"{name} stayed at {value}, below {least}"
        time.sleep(0.1)
    return value


async def _download(port: int, index: int, part: int, done: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    start = (index * 7919 * 4096) % (HUGE - part)
    writer.write(
        b"GET /big/huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=%d-%d\r\n\r\n"
        % (start, start + part - 1)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206"), head
    got = 0
    while got < part:  # a slow reader: 64 KiB at a time, with pauses
        data = await reader.read(min(65536, part - got))
        assert data
        got += len(data)
        await asyncio.sleep(0.02)
    done.append(got)
    writer.close()


async def _many(port: int, count: int, part: int, pid: int) -> tuple[int, int]:
    """Run ``count`` slow downloads at once; → (their bytes, the peak RSS seen, KiB)."""
    done: list[int] = []
    peak = 0
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_download(port, i, part, done)))
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the connects go out in waves
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.05)
        peak = max(peak, _rss_kib(pid))
    for task in tasks:
        task.result()  # raise what failed
    return sum(done), peak


def test_1000_concurrent_downloads_keep_rss_flat(serve: Starter, mode: str, huge: Path) -> None:
    server = serve(SHARED_APP, "--static", f"/big={huge}", workers=1)
    pid = _serving_pid(server, mode)
    assert httpx.get(server.url + "/big/huge.bin", headers={"range": "bytes=0-9"}).content == (
        b"\0" * 10
    )
    before = _rss_kib(pid)
    part = 1 << 20
    total, peak = asyncio.run(asyncio.wait_for(_many(server.port, 1000, part, pid), 50))
    assert total == 1000 * part
    growth_mib = (peak - before) / 1024
    # 1,000 GiB-sized downloads in flight: each holds a connection and at most a nudge
    # of its file in user space, never the file (1 MiB per client would be 1,000 MiB)
    assert growth_mib < 64, f"the serving process grew by {growth_mib:.0f} MiB"


def test_a_client_that_stops_reading_is_cut(serve: Starter, huge: Path) -> None:
    server = serve(
        SHARED_APP,
        "--static",
        f"/big={huge}",
        "--write-timeout",
        "1",
        "--metrics-bind",
        "127.0.0.1:0",
        workers=1,
    )
    metrics = metrics_port(server)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /big/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 20
    while metric(metrics, "swserve_connections_open") != 0:  # the reactor lets it go
        assert time.monotonic() < deadline, "the stalled download was never cut"
        time.sleep(0.1)
    got = 0
    sock.settimeout(10)
    try:
        while chunk := sock.recv(1 << 20):
            got += len(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    assert got < HUGE


def test_tls(serve: Starter, certs: Certs) -> None:  # noqa: F811
    server = serve(SHARED_APP, *STATIC, *tls_args(certs), workers=1)
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    with httpx.Client(base_url=server.url, verify=ctx, timeout=30) as client:
        r = client.get("/static/random.bin")
        assert r.status_code == 200
        assert r.content == RANDOM
        r = client.get("/static/random.bin", headers={"range": "bytes=1000-"})
        assert r.status_code == 206
        assert r.content == RANDOM[1000:]
        assert client.get("/static/hello.txt").content == (ROOT / "hello.txt").read_bytes()


def test_metrics_and_access_log_count_static(serve: Starter) -> None:
    server = serve(
        SHARED_APP,
        *STATIC,
        "--metrics-bind",
        "127.0.0.1:0",
        "--access-log",
        "--access-log-format",
        "json",
        workers=1,
    )
    metrics = metrics_port(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/static/hello.txt").status_code == 200
        assert client.get("/static/random.bin").status_code == 200
        assert client.get("/elsewhere").status_code == 200
    line = server.wait_for(r'\{"time": .*"path": "/static/random.bin"').string
    record = json.loads(line[line.index("{") :])
    assert record["static"] is True
    assert record["status"] == 200
    assert record["bytes"] == len(RANDOM)
    line = server.wait_for(r'\{"time": .*"path": "/elsewhere"').string
    assert json.loads(line[line.index("{") :])["static"] is False
    wait_metric(metrics, "swserve_static_responses_total", 2)
    text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
    assert re.search(r'^swserve_requests_total\{method="GET",status="2xx"\} 3$', text, re.M)
    assert metric(metrics, "swserve_response_body_bytes_total") >= len(RANDOM)
