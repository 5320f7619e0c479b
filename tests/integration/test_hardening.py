"""Slow clients and floods: timeouts, queue limits and header limits, on the live server."""

from __future__ import annotations

import concurrent.futures
import os
import resource
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ResponseReader, connect, exchange
from tests.integration.conftest import Starter
from tests.integration.test_frameworks import _session_rss

pytestmark = pytest.mark.modes("process", "base", "reactors")


def test_slowloris_is_answered_408_and_others_are_served(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--header-timeout", "1", workers=1)
    stop = threading.Event()
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(200)]
    closed_after: list[float] = []

    def trickle(sock: socket.socket) -> None:
        started = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000
        try:
            for byte in head:
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                stop.wait(0.2)  # one header byte every 0.2 s: the slowloris pattern
        except OSError:
            pass
        closed_after.append(time.monotonic() - started)

    threads = [threading.Thread(target=trickle, args=(s,), daemon=True) for s in slow]
    for t in threads:
        t.start()
    # one more slow client that stops writing after part of its head: nothing it
    # sends after the server gave up can reset the connection, so its 408 arrives
    quiet = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    quiet.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: aaa")
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(10):  # others are served meanwhile (within the client's timeout)
                assert client.get("/echo").status_code == 200
        reader = ResponseReader(quiet)
        response = reader.read()  # within the socket's 10 s: --header-timeout is 1 s
        assert response.status == 408
        assert response.header("connection") == "close"
        assert reader.closed()
        # every trickling client is cut off long before its 200 s head is sent
        deadline = time.monotonic() + 10
        while len(closed_after) < len(slow):
            assert time.monotonic() < deadline, f"only {len(closed_after)} slow clients were closed"
            time.sleep(0.05)  # polling the closers' reports with a deadline
    finally:
        stop.set()
        quiet.close()
        for s in slow:
            s.close()


def test_body_timeout(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--body-timeout", "1", workers=1)
    with connect(server.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        r = ResponseReader(sock).read()  # the socket's 10 s timeout bounds the wait
        assert r.status == 408


def test_queue_limit_answers_503_at_once_and_recovers(
    serve: Starter, tmp_path: Path, mode: str
) -> None:
    if mode == "base":
        pytest.skip(
            "base mode, one thread: the loop is in the app, new requests wait in the backlog"
        )
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = serve("gate:app", "--max-queued-requests", "2", workers=1)
    reactors = 2 if mode == "reactors" else 1  # each reactor queues up to the limit
    request = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n"
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        busy = pool.submit(
            exchange, server.port, b"GET /wait?g=%s HTTP/1.1\r\nHost: x\r\n\r\n" % bytes(gate)
        )
        server.wait_for("gate: waiting", stream="stdout")  # the only worker is held
        flood = [pool.submit(exchange, server.port, request) for _ in range(8)]
        # While the worker is held, nothing can be answered but a 503: the first
        # 8 - 2 x reactors answers come at once, not after a timeout or the gate.
        done = concurrent.futures.as_completed(flood, timeout=20)
        early = [next(done).result()[0] for _ in range(8 - 2 * reactors)]
        assert [r.status for r in early] == [503] * len(early)
        assert all(r.header("retry-after") == "1" for r in early)
        assert not busy.done()
        with open(gate, "wb") as opened:  # release the worker: the queued ones are served
            opened.write(b"go")
        statuses = sorted(f.result()[0].status for f in flood)
        assert busy.result()[0].status == 200
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 1
    assert exchange(server.port, request)[0].status == 200  # recovered
    server.wait_for("--max-queued-requests")


def test_header_limits_are_settings(serve: Starter) -> None:
    server = serve(
        "wsgi_echo:app", "--limit-request-line", "100", "--limit-request-fields", "5",
        "--limit-request-field-size", "200", workers=1,
    )  # fmt: skip
    port = server.port
    assert exchange(port, b"GET /" + b"a" * 150 + b" HTTP/1.1\r\nHost: x\r\n\r\n")[0].status == 414
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(6))
    assert exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")[0].status == 431
    assert (
        exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 300 + b"\r\n\r\n")[0].status
        == 431
    )
    assert exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")[0].status == 200


def test_connections_above_the_limit_wait_in_the_backlog_and_are_served(
    serve: Starter, mode: str
) -> None:
    # the limit is per reactor: the master's in process mode, each worker's in base mode
    server = serve(
        "wsgi_echo:app", "--max-connections", "20", workers=2 if mode == "process" else 1
    )
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    held = []
    for _ in range(20):
        sock = connect(server.port)
        sock.sendall(request)
        assert ResponseReader(sock).read().status == 200
        held.append(sock)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    waiting = [
        socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(1000)
    ]
    for sock in waiting:
        sock.sendall(request)
    waiting[0].settimeout(0.5)
    try:
        waiting[0].recv(1)
        raise AssertionError("a connection above --max-connections was served while at the limit")
    except TimeoutError:
        pass  # accepted by the kernel, not by us: it waits in the backlog
    for sock in held:
        sock.close()  # below the limit: accepting resumes
    for sock in waiting:
        sock.settimeout(20)
        r = ResponseReader(sock).read()
        assert r.status == 200
        sock.close()  # make room for the next ones
    server.wait_for(r"--max-connections \(20\) reached")


def test_client_that_never_reads_is_dropped_after_the_write_timeout(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--write-timeout", "1", workers=1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    body = b"x" * (10 * 1024 * 1024)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    sock.settimeout(15)
    time.sleep(3)  # deliberately not reading: this is the client under test, not synchronisation
    total = 0
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass  # dropped: the end of the stream, as EOF is (a timeout is not, and fails)
    sock.close()
    assert total < len(body), "the whole response arrived: the connection was not dropped"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/echo").status_code == 200


def test_large_bodies_are_spooled_to_a_file_and_arrive_whole(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--body-spool-size", "64KiB", workers=1)
    body = bytes(range(256)) * 20_000  # ~5 MiB
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/echo", content=body)
        assert r.content == body
        small = client.post("/echo", content=b"tiny")
        assert small.content == b"tiny"
        r = client.post("/input-type", content=body)
        assert r.text == "BufferedReader"  # a file, not a copy in memory


def test_spooled_body_reaches_asgi_in_parts(serve: Starter) -> None:
    server = serve("asgi_echo:app", "--body-spool-size", "64KiB", workers=1)
    body = b"0123456789" * 300_000  # 3 MB
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/echo", content=body).content == body
        assert client.post("/echo-parts", content=body).json() > 1


def test_worker_that_writes_a_malformed_frame_is_treated_as_crashed(
    serve: Starter, mode: str
) -> None:
    if mode == "base":
        pytest.skip("base mode has no request frames between processes")
    server = serve("rogue:app", workers=1)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        first = client.get("/").text
        assert client.get("/garbage").status_code == 502
        server.wait_for("sent a malformed frame")
        deadline = time.monotonic() + 20
        while True:  # the worker is replaced; requests meanwhile wait in the reactor
            r = client.get("/")
            if r.status_code == 200 and r.text != first:
                break
            assert time.monotonic() < deadline
    assert server.stop() == 0


def test_clients_that_reset_mid_request_mid_response_and_mid_chunk(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=1)

    def reset(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST, not FIN

    for payload in (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",  # mid-body
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  # mid-chunk
        b"GET /echo HTTP/1.1\r\nHo",  # mid-head
    ):
        sock = connect(server.port)
        sock.sendall(payload)
        reset(sock)
    sock = connect(server.port)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.recv(5)  # the response has started
    reset(sock)  # mid-response
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(5):
            assert client.get("/echo").status_code == 200
    assert server.stop() == 0
    assert "Traceback" not in server.logs()


def test_running_out_of_file_descriptors_backs_off_and_recovers(tmp_path: Path) -> None:
    """EMFILE on accept: log, back off, keep serving; never spin or crash."""
    import sys

    from tests.integration.conftest import APPS, Server

    launcher = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'swserve'] + sys.argv[1:])"
    )
    args = [sys.executable, "-c", launcher, "wsgi_echo:app", "--bind", "127.0.0.1:0",
            "--workers", "1", "--app-dir", str(APPS)]  # fmt: skip
    server = Server(args).wait_ready()
    try:
        request = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
        socks = [
            socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(80)
        ]
        for sock in socks:
            sock.sendall(request)
        server.wait_for("cannot accept: Too many open files; backing off")
        served = 0
        for sock in socks:  # reading each answer and closing frees descriptors for the next
            assert ResponseReader(sock).read().status == 200
            sock.close()
            served += 1
        assert served == 80
        assert exchange(server.port, request)[0].status == 200
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("app", ["wsgi_echo:app", "asgi_echo:app"])
def test_a_client_that_stops_reading_holds_the_app_back(
    serve: Starter, app: str, mode: str
) -> None:
    """Back-pressure with --reactors 2: a client that stops reading a 200 MiB
    stream must not cost the server 200 MiB.  The app prints a line once it has
    handed over its last chunk: that line arriving within 5 s means nothing held
    it back, and then the memory shows where the stream went."""
    if mode != "reactors":
        pytest.skip("process and base mode: test_frameworks' slow-reader test, every framework")
    server = serve(app, workers=1)
    before = _session_rss(server)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big?n=3200 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1)  # the response has started; now stop reading
        try:
            server.wait_for("^big: done$", 5.0, stream="stdout")
        except AssertionError:
            pass  # still held back after 5 s: back-pressure works
        grown = _session_rss(server) - before
    finally:
        sock.close()
    assert grown < 64 * 1024 * 1024, f"the server grew by {grown >> 20} MiB for one unread stream"
