"""HTTP/2 end to end: httpx (its http2 extra), nghttp/h2load, and a raw h2 client on a socket.

The streams of one connection are dispatched to idle workers like HTTP/1.1
requests, so they run in parallel on different workers.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import trustme
from h2.errors import ErrorCodes

from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

APP = "h2_app:app"
H2C = ("--http2", "on")
BASE_ONE_WORKER = (
    "base mode: the worker that accepted a connection runs all its streams (and takes the "
    "connection with it when it dies)"
)  # 127.0.0.1 is in the default --forwarded-allow-ips
needs_nghttp = pytest.mark.skipif(
    shutil.which("h2load") is None or shutil.which("nghttp") is None,
    reason="nghttp2-client (Debian) is not installed",
)


def client(server: Server, **kwargs: object) -> httpx.AsyncClient:
    """One HTTP/2 connection (prior knowledge over cleartext)."""
    return httpx.AsyncClient(
        base_url=server.url,
        http1=False,
        http2=True,
        limits=httpx.Limits(max_connections=1),
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )


async def gather_get(server: Server, paths: list[str]) -> list[httpx.Response]:
    async with client(server) as c:
        return list(await asyncio.gather(*(c.get(p) for p in paths)))


def test_streams_of_one_connection_run_on_different_workers(serve: Starter, mode: str) -> None:
    server = serve(APP, *H2C, workers=4)
    responses = asyncio.run(gather_get(server, ["/pid?s=0.5"] * 8))
    assert {r.status_code for r in responses} == {200}
    assert {r.http_version for r in responses} == {"HTTP/2"}
    pids = {r.text for r in responses}
    if mode == "base":  # the worker that accepted the connection runs all its streams
        assert len(pids) == 1, pids
    else:
        assert len(pids) >= 3, pids  # one connection, several workers at once


def test_the_app_sees_http2_and_connection_headers_are_dropped(serve: Starter) -> None:
    server = serve(APP, *H2C)
    (proto, pid) = asyncio.run(gather_get(server, ["/proto", "/pid"]))
    assert proto.text == "HTTP/2"
    assert "connection" not in proto.headers  # the app's Connection: x is not HTTP/2's
    assert proto.headers["server"] == "swserve"
    assert "date" in proto.headers
    assert pid.headers["content-length"] == str(len(pid.text))


def test_large_bodies_both_ways_with_flow_control(serve: Starter) -> None:
    server = serve(APP, *H2C)
    up = bytes(range(256)) * (6 * 4096)  # 6 MiB, past every default window

    async def run() -> tuple[httpx.Response, httpx.Response]:
        async with client(server) as c:
            return await asyncio.gather(c.post("/echo", content=up), c.get("/big?n=20000000"))

    echoed, big = asyncio.run(run())
    assert echoed.content == up
    assert len(big.content) == 20_000_000


def test_a_slow_stream_does_not_hold_up_a_fast_one(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip(BASE_ONE_WORKER)
    server = serve(APP, *H2C, workers=2)

    async def run() -> list[str]:
        order: list[str] = []
        async with client(server) as c:

            async def get(path: str, name: str) -> None:
                await c.get(path)
                order.append(name)

            slow = asyncio.create_task(get("/pid?s=3", "slow"))
            await asyncio.sleep(0)  # the slow stream opens first
            await get("/pid", "fast")
            await slow
        return order

    assert asyncio.run(run()) == ["fast", "slow"]


def test_a_worker_that_dies_fails_only_its_own_stream(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip(BASE_ONE_WORKER)
    server = serve(APP, *H2C, workers=2)
    crashed, fine = asyncio.run(gather_get(server, ["/crash", "/pid?s=0.2"]))
    assert crashed.status_code == 502
    assert fine.status_code == 200


def test_a_worker_that_dies_mid_response_resets_only_its_stream(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip(BASE_ONE_WORKER)
    server = serve(APP, *H2C, workers=2)

    async def run() -> tuple[BaseException | httpx.Response, ...]:
        async with client(server) as c:
            return tuple(
                await asyncio.gather(c.get("/crash-mid"), c.get("/pid"), return_exceptions=True)
            )

    cut, fine = asyncio.run(run())
    assert isinstance(cut, httpx.RemoteProtocolError), cut  # RST_STREAM INTERNAL_ERROR
    assert "error_code:2," in str(cut)  # INTERNAL_ERROR
    assert isinstance(fine, httpx.Response)
    assert fine.status_code == 200


def test_a_zero_window_stall_is_reset_past_the_write_timeout(
    serve: Starter, raws: Callable[[int], Raw]
) -> None:
    server = serve(APP, *H2C, "--write-timeout", "1")
    raw = raws(server.port)
    raw.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    raw.h2.send_headers(1, [*REQ[:1], (":path", "/big?n=1000000"), *REQ[2:]], end_stream=True)
    raw.flush()
    events = raw.events_until(h2.events.StreamReset)
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(1, ErrorCodes.CANCEL)]
    # the connection itself goes on
    raw.h2.send_headers(3, REQ, end_stream=True)
    raw.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    raw.flush()
    ended = raw.events_until(h2.events.StreamEnded)
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 3 for e in ended)


def test_h2c_from_an_untrusted_peer_is_http11(serve: Starter) -> None:
    server = serve(APP, *H2C, "--forwarded-allow-ips", "10.9.9.9")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 5"), reply
    # ... unless --http2-cleartext any
    other = serve(APP, *H2C, "--forwarded-allow-ips", "10.9.9.9", "--http2-cleartext", "any")
    (r,) = asyncio.run(gather_get(other, ["/proto"]))
    assert r.http_version == "HTTP/2"


def test_http11_still_works_beside_h2c(serve: Starter) -> None:
    server = serve(APP, *H2C)
    r = httpx.get(server.url + "/proto", timeout=10)
    assert (r.http_version, r.text) == ("HTTP/1.1", "HTTP/1.1")


def test_h2_over_tls_by_alpn_with_http11_fallback(
    serve: Starter, tmp_path: Path, mode: str
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    server = serve(APP, *H2C, "--ssl-certfile", str(chain), "--ssl-keyfile", str(key), workers=3)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(verify=ctx, http2=True, timeout=30) as c:
            return list(await asyncio.gather(*(c.get(server.url + "/pid?s=0.3") for _ in range(6))))

    responses = asyncio.run(run())
    assert {r.http_version for r in responses} == {"HTTP/2"}
    seen = len({r.text for r in responses})
    if mode == "base":
        assert seen == 1
    else:
        assert seen >= 2
    old = httpx.get(server.url + "/proto", verify=ctx, timeout=10)  # ALPN http/1.1
    assert (old.http_version, old.text) == ("HTTP/1.1", "HTTP/1.1")


# -- a raw h2 client over a socket: floods and GOAWAY ------------------------------------

REQ = [(":method", "GET"), (":path", "/pid"), (":scheme", "http"), (":authority", "x")]


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def events_until(self, kind: type, deadline: float = 15.0) -> list[h2.events.Event]:
        """Read until an event of ``kind`` (or the connection's end); every event seen."""
        seen: list[h2.events.Event] = []
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            events = self.h2.receive_data(data)
            seen += events
            self.sock.sendall(self.h2.data_to_send())
            if any(isinstance(e, kind) for e in events):
                return seen
        return seen


@pytest.fixture
def raws() -> Iterator[Callable[[int], Raw]]:
    """``raws(port)``: a raw client, closed at teardown."""
    made: list[Raw] = []

    def make(port: int) -> Raw:
        made.append(Raw(port))
        return made[-1]

    yield make
    for raw in made:
        raw.sock.close()


def terminated(events: list[h2.events.Event]) -> h2.events.ConnectionTerminated:
    found = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert found, events
    return found[0]


def test_rapid_reset_gets_goaway_enhance_your_calm(
    serve: Starter, raws: Callable[[int], Raw]
) -> None:
    server = serve(APP, *H2C, "--http2-max-resets", "50")
    raw = raws(server.port)
    for _ in range(80):
        sid = raw.h2.get_next_available_stream_id()
        raw.h2.send_headers(sid, REQ, end_stream=True)
        raw.h2.reset_stream(sid)
    raw.flush()
    got = terminated(raw.events_until(h2.events.ConnectionTerminated))
    assert got.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert httpx.get(server.url + "/pid", timeout=10).status_code == 200  # the server is fine


@pytest.mark.parametrize("flood", ["ping", "settings"])
def test_ping_and_settings_floods_get_enhance_your_calm(
    serve: Starter, raws: Callable[[int], Raw], flood: str
) -> None:
    server = serve(APP, *H2C, "--http2-max-resets", "50")
    raw = raws(server.port)
    for i in range(120):
        if flood == "ping":
            raw.h2.ping(b"%08d" % i)
        else:
            raw.h2.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
    raw.flush()
    got = terminated(raw.events_until(h2.events.ConnectionTerminated))
    assert got.error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_a_continuation_flood_gets_goaway(serve: Starter, raws: Callable[[int], Raw]) -> None:
    from hyperframe.frame import ContinuationFrame, HeadersFrame

    server = serve(APP, *H2C)
    raw = raws(server.port)
    block = raw.h2.encoder.encode(REQ)
    frames = HeadersFrame(1, data=block, flags=["END_STREAM"]).serialize()
    frames += b"".join(ContinuationFrame(1, data=b"\0" * 16000).serialize() for _ in range(40))
    try:
        raw.sock.sendall(frames)
    except OSError:
        pass  # the server may close before it has read all of it
    got = terminated(raw.events_until(h2.events.ConnectionTerminated))
    assert got.error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_an_hpack_bomb_gets_goaway(serve: Starter, raws: Callable[[int], Raw]) -> None:
    """A small header block that decodes to a huge list (one big field in the dynamic table,
    then referenced over and over) is bounded on the decoded list: GOAWAY ENHANCE_YOUR_CALM."""
    from hyperframe.frame import HeadersFrame

    server = serve(APP, *H2C)
    raw = raws(server.port)
    raw.h2.send_headers(1, [*REQ, ("x-big", "a" * 3000)], end_stream=True)
    raw.flush()
    raw.events_until(h2.events.StreamEnded)  # answered: the big field is in both tables
    block = raw.h2.encoder.encode(REQ)
    names = [name for name, _ in raw.h2.encoder.header_table.dynamic_entries]
    block += (
        bytes([0x80 | (62 + names.index(b"x-big"))]) * 100
    )  # 300 KB decoded, past the 64 KiB list
    raw.sock.sendall(HeadersFrame(3, data=block, flags=["END_STREAM", "END_HEADERS"]).serialize())
    got = terminated(raw.events_until(h2.events.ConnectionTerminated))
    assert got.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert httpx.get(server.url + "/pid", timeout=10).status_code == 200  # the server is fine


def test_a_malformed_request_resets_only_its_stream(
    serve: Starter, raws: Callable[[int], Raw]
) -> None:
    """RFC 9113 §8.1.1: a stream error PROTOCOL_ERROR; the connection serves the next one."""
    from hyperframe.frame import HeadersFrame

    server = serve(APP, *H2C)
    raw = raws(server.port)
    block = raw.h2.encoder.encode([*REQ, ("X-Upper-Case", "1")])  # h2 would not send it
    raw.sock.sendall(HeadersFrame(1, data=block, flags=["END_STREAM", "END_HEADERS"]).serialize())
    data = b""
    while not any(kind == 0x3 for kind, _, _, _ in frames(data)):  # RST_STREAM
        chunk = raw.sock.recv(65536)
        assert chunk, frames(data)
        data += chunk
    rst = [f for f in frames(data) if f[0] == 0x3]
    assert [(sid, int.from_bytes(p, "big")) for _, _, sid, p in rst] == [
        (1, ErrorCodes.PROTOCOL_ERROR)
    ]
    block = raw.h2.encoder.encode(REQ)
    raw.sock.sendall(HeadersFrame(3, data=block, flags=["END_STREAM", "END_HEADERS"]).serialize())
    while not any(kind == 0x0 and sid == 3 and flags & 0x1 for kind, flags, sid, _ in frames(data)):
        chunk = raw.sock.recv(65536)
        assert chunk, frames(data)
        data += chunk


def test_max_concurrent_streams_is_advertised(serve: Starter, raws: Callable[[int], Raw]) -> None:
    server = serve(APP, *H2C, "--http2-max-concurrent-streams", "2")
    raw = raws(server.port)
    raw.events_until(h2.events.RemoteSettingsChanged)
    assert raw.h2.remote_settings.max_concurrent_streams == 2


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Raw frames: (type, flags, stream id, payload); h2's client stops reading at GOAWAY."""
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        kind, flags = data[3], data[4]
        sid = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        out.append((kind, flags, sid, data[9 : 9 + length]))
        data = data[9 + length :]
    return out


def test_shutdown_sends_goaway_and_finishes_the_streams_in_flight(
    serve: Starter, raws: Callable[[int], Raw], mode: str
) -> None:
    server = serve(APP, *H2C)
    raw = raws(server.port)
    raw.h2.send_headers(1, [*REQ[:1], (":path", "/pid?s=1.5"), *REQ[2:]], end_stream=True)
    raw.h2.ping(b"received")  # its ACK proves the HEADERS before it were read
    raw.flush()
    early = raw.events_until(h2.events.PingAckReceived)
    server.send(signal.SIGTERM)
    data = b""
    while chunk := raw.sock.recv(65536):
        data += chunk
    got = frames(data)
    goaway = [f for f in got if f[0] == 0x7]
    assert goaway
    payload = goaway[0][3]
    assert int.from_bytes(payload[:4], "big") == 1  # the last stream id
    assert int.from_bytes(payload[4:8], "big") == ErrorCodes.NO_ERROR
    if mode == "base":  # the app ran inline, before the PING was even read: answered
        assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in early)
        assert server.wait_exit(30) == 0
        return
    # after it, stream 1's response, to its end
    after = got[got.index(goaway[0]) :]
    assert any(kind == 0x1 and sid == 1 for kind, _, sid, _ in after)
    assert any(kind == 0x0 and sid == 1 and flags & 0x1 for kind, flags, sid, _ in after)
    assert server.wait_exit(30) == 0


def h2load(server: Server, requests: int, streams: int) -> str:
    """h2load over 2 connections with ``streams`` concurrent streams each: its report."""
    argv = ["h2load", "-n", str(requests), "-c", "2", "-m", str(streams), f"{server.url}/pid"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout


@needs_nghttp
def test_nghttp_and_h2load(serve: Starter, mode: str) -> None:
    server = serve(APP, *H2C, workers=3)
    # nghttp: 9 concurrent streams on its one connection, each answered with its worker's pid
    out = subprocess.run(
        ["nghttp", "-m", "9", f"{server.url}/pid?s=0.3&nl=1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    pids = out.stdout.split()
    assert len(pids) == 9, out.stdout
    if mode == "base":  # the worker that accepted the connection runs all its streams
        assert len(set(pids)) == 1, pids
    else:
        assert len(set(pids)) >= 2, pids  # one connection, several workers at once
    out_text = h2load(server, 600, 20)
    assert "600 succeeded, 0 failed" in out_text, out_text


@needs_nghttp
def test_reload_under_h2_load_fails_no_stream(serve: Starter) -> None:
    server = serve(APP, *H2C, "--access-log", workers=2)
    load = subprocess.Popen(
        ["h2load", "-n", "3000", "-c", "2", "-m", "10", f"{server.url}/pid"],
        stdout=subprocess.PIPE,
        text=True,
    )
    server.wait_for(r'"GET /pid HTTP/2\.0" 200')  # the load is on (and logged per stream)
    server.send(signal.SIGHUP)
    stdout, _ = load.communicate(timeout=60)
    assert "3000 succeeded, 0 failed" in stdout, stdout
    server.wait_for("reload finished", timeout=30)


def upgrade_h2c(port: int) -> tuple[bytes, list[h2.events.Event]]:
    """``Upgrade: h2c`` on a raw socket: the HTTP/1.1 reply head, then HTTP/2 events if 101."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        settings = conn.initiate_upgrade_connection()
        assert settings is not None
        s.sendall(
            b"GET /proto HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return head + b"\r\n\r\n" + rest, []
        s.sendall(conn.data_to_send())
        events = conn.receive_data(rest) if rest else []
        while not any(isinstance(e, h2.events.StreamEnded) for e in events):
            chunk = s.recv(65536)
            assert chunk, events
            events += conn.receive_data(chunk)
            s.sendall(conn.data_to_send())
        return head, events


def test_upgrade_h2c_makes_the_request_stream_1(serve: Starter) -> None:
    server = serve(APP, *H2C)
    head, events = upgrade_h2c(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"upgrade: h2c" in head.lower()
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert data == b"HTTP/2"  # answered on stream 1, over HTTP/2
    # from a peer outside --forwarded-allow-ips, the upgrade is ignored: plain HTTP/1.1
    other = serve(APP, *H2C, "--forwarded-allow-ips", "10.9.9.9")
    reply, none = upgrade_h2c(other.port)
    assert reply.startswith(b"HTTP/1.1 200")
    assert reply.endswith(b"HTTP/1.1")
    assert none == []


def test_metrics_count_each_stream(serve: Starter) -> None:
    from tests.integration.test_metrics import METRICS_ARGS, metrics_port, poll, requests_by_label

    server = serve(APP, *H2C, *METRICS_ARGS)
    port = metrics_port(server)
    responses = asyncio.run(gather_get(server, ["/pid"] * 5 + ["/nothing"]))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [404]
    samples = poll(port, lambda s: requests_by_label(s).get(("GET", "4xx")) == 1, "the 404")
    counts = requests_by_label(samples)
    assert counts[("GET", "2xx")] == 5
    assert counts[("GET", "4xx")] == 1


@needs_nghttp
def test_recycling_under_h2_load_fails_no_stream(serve: Starter) -> None:
    server = serve(APP, *H2C, "--max-requests", "100", "--max-requests-jitter", "0", workers=2)
    before = {pid for pid, title in server.children().items() if "worker" in title}
    out = h2load(server, 1500, 10)
    assert "1500 succeeded, 0 failed" in out, out
    # workers were replaced (a replacement boots first, then the old one retires: wait)
    deadline = time.monotonic() + 30
    while not before - {pid for pid, title in server.children().items() if "worker" in title}:
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)  # polling the process list, with a deadline
