"""WebSocket sessions, ASGI websocket spec 2.4, against real clients.

Each spec event (connect, accept with subprotocol and headers, receive text and
bytes, send, close with code and reason, disconnect with its code, the HTTP
denial response, close before accept → 403), the handshake checks (400/426,
raw sockets), and the frameworks' endpoints.  Process mode, base mode, and
process mode with a second reactor process (``--reactors 2``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.integration.conftest import Server, Starter
from tests.integration.ws_helpers import (
    FrameReader,
    client_frame,
    handshake_request,
    raw_session,
    read_head,
    run,
    ws_url,
)

pytestmark = pytest.mark.modes("process", "base", "reactors")

SHARED_APP = "ws_echo:app"


def test_echo_text_and_bytes(shared_server: Server) -> None:
    async def go() -> list[Any]:
        async with connect(ws_url(shared_server)) as ws:
            out = []
            for message in ("hello", b"\x00\x01binary", "é" * 1000, b"x" * 300_000):
                await ws.send(message)
                out.append(await ws.recv())
            await ws.close(1000, "done")
            return [*out, ws.close_code]

    assert run(go) == ["hello", b"\x00\x01binary", "é" * 1000, b"x" * 300_000, 1000]


def test_many_messages_keep_their_order(shared_server: Server) -> None:
    async def go() -> list[str]:
        async with connect(ws_url(shared_server)) as ws:
            for i in range(500):
                await ws.send(str(i))
            return [str(await ws.recv()) for _ in range(500)]

    assert run(go) == [str(i) for i in range(500)]


def test_scope(shared_server: Server) -> None:
    async def go() -> dict[str, Any]:
        async with connect(
            ws_url(shared_server, "/scope?a=1&b=%41"),
            subprotocols=[Subprotocol("chat"), Subprotocol("superchat")],
        ) as ws:
            return dict(json.loads(await ws.recv()))

    scope = run(go)
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "a=1&b=%41"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", shared_server.port]
    assert "method" not in scope
    assert "sec-websocket-key" in scope["header_names"]
    assert scope["extensions"]["websocket.http.response"] == {}
    session = scope["extensions"]["swserve.session"]["id"]
    assert isinstance(session, str)
    assert session


def test_session_ids_differ(shared_server: Server) -> None:
    async def go() -> set[str]:
        ids = set()
        for _ in range(3):
            async with connect(ws_url(shared_server, "/scope")) as ws:
                ids.add(json.loads(await ws.recv())["extensions"]["swserve.session"]["id"])
        return ids

    assert len(run(go)) == 3


def test_accept_with_subprotocol_and_headers(shared_server: Server) -> None:
    async def go() -> tuple[str | None, str | None, str]:
        async with connect(
            ws_url(shared_server, "/subprotocol"),
            subprotocols=[Subprotocol("v2.proto"), Subprotocol("v1.proto")],
        ) as ws:
            assert ws.response is not None
            await ws.send("ping")
            return ws.subprotocol, ws.response.headers.get("x-extra"), str(await ws.recv())

    assert run(go) == ("v2.proto", "1", "ping")


def test_server_closes_with_code_and_reason(shared_server: Server) -> None:
    async def go() -> tuple[int | None, str | None]:
        async with connect(ws_url(shared_server, "/close")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert run(go) == (4001, "bye now")


def test_denial_response(shared_server: Server) -> None:
    async def go() -> InvalidStatus:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(shared_server, "/deny")):
                pass
        return info.value

    exc = run(go)
    assert exc.response.status_code == 418
    assert exc.response.headers["x-denied"] == "yes"
    assert exc.response.body == b"no tea for you"


def test_close_before_accept_is_403(shared_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/close-early"))
        status, _, _ = read_head(sock)
    assert status == 403


def test_app_error_before_accept_is_500_after_is_1011(shared_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/raise-early"))
        assert read_head(sock)[0] == 500
    sock, rest = raw_session(shared_server, "/raise")
    with sock:
        assert FrameReader(sock, rest).close_code() == 1011
    shared_server.wait_for("boom after accept")


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"method": "POST"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec-WebSocket-Key": None}, 400),
        ({"Sec-WebSocket-Key": "not-base64!"}, 400),
        ({"Sec-WebSocket-Key": "c2hvcnQ="}, 400),  # 5 bytes, not 16
        ({"Sec-WebSocket-Version": None}, 400),
        ({"Sec-WebSocket-Version": "8"}, 426),
    ],
)
def test_bad_handshakes(
    shared_server: Server, overrides: dict[str, str | None], status: int
) -> None:
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/", **overrides))
        got, headers, _ = read_head(sock)
    assert got == status
    if status == 426:
        assert headers["sec-websocket-version"] == "13"


def test_plain_http_still_works_beside_sessions(shared_server: Server) -> None:
    async def go() -> str:
        async with connect(ws_url(shared_server)) as ws:
            async with httpx.AsyncClient(base_url=shared_server.url) as client:
                r = await client.get("/")
            await ws.send("after")
            reply = await ws.recv()
            assert isinstance(reply, str)
            return f"{r.text}/{reply}"

    assert run(go) == "ok/after"


def test_bad_frames_get_the_rfc_close_code_and_no_traceback(shared_server: Server) -> None:
    cases = [
        (client_frame(0x1, b"unmasked", mask=False), 1002),  # clients must mask
        (client_frame(0x1, b"\xff\xfe bad utf-8"), 1007),
        (client_frame(0x3, b"reserved opcode"), 1002),
        (client_frame(0x9, b"x" * 126), 1002),  # a control frame over 125 bytes
        (client_frame(0x1, b"part", fin=False) + client_frame(0x2, b"new message"), 1002),
    ]
    start = len(shared_server.stderr)
    for data, code in cases:
        sock, rest = raw_session(shared_server)
        with sock:
            sock.sendall(data)
            assert FrameReader(sock, rest).close_code() == code, data
    assert not any("Traceback" in line for line in shared_server.stderr[start:])


def test_fragmented_message_is_reassembled(shared_server: Server) -> None:
    sock, rest = raw_session(shared_server)
    with sock:
        sock.sendall(
            client_frame(0x1, "héllo ".encode()[:2], fin=False)
            + client_frame(0x9, b"ping in between")
            + client_frame(0x0, "héllo ".encode()[2:], fin=False)
            + client_frame(0x0, b"world")
        )
        reader = FrameReader(sock, rest)
        frames = [reader.frame(), reader.frame()]
    assert (0xA, b"ping in between") in frames  # the pong
    assert (0x1, "héllo world".encode()) in frames


def test_client_disconnect_code_reaches_the_app(serve: Starter) -> None:
    server = serve(SHARED_APP, workers=1)

    async def go() -> list[Any]:
        async with connect(ws_url(server, "/disconnect")) as ws:
            await ws.close(4002, "ciao")
        async with connect(ws_url(server, "/disconnect")):
            pass  # an ordinary close: 1000
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(100):  # the app records the disconnect as the close completes
                got = (await client.get("/last")).json()
                if len(got) == 2:
                    return list(got)
                await asyncio.sleep(0.05)
        raise AssertionError("the app did not see both disconnects")

    assert run(go) == [
        {"type": "websocket.disconnect", "code": 4002, "reason": "ciao"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


def test_wsgi_app_gets_the_upgrade_as_plain_http(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/"))
        status, headers, _ = read_head(sock)
    assert status == 200
    assert "sec-websocket-accept" not in headers


def test_ws_none_gives_the_upgrade_to_the_app_as_http(serve: Starter) -> None:
    server = serve(SHARED_APP, "--ws", "none", workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/"))
        assert read_head(sock)[0] == 200


def test_fastapi_and_starlette_endpoints(serve: Starter) -> None:
    server = serve("ws_frameworks:app", workers=1)

    async def go() -> list[Any]:
        out: list[Any] = []
        async with connect(
            ws_url(server, "/fastapi/echo"), subprotocols=[Subprotocol("graphql-ws")]
        ) as ws:
            out.append(ws.subprotocol)
            await ws.send("hi")
            out.append(await ws.recv())
            await ws.send(b"raw")
            out.append(await ws.recv())
            await ws.close(4010)
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(server, "/fastapi/deny")):
                pass
        out.append(info.value.response.status_code)
        async with connect(ws_url(server, "/fastapi/json")) as ws:
            await ws.send(json.dumps({"n": 1}))
            reply = json.loads(await ws.recv())
            out.append(reply["got"])
            out.append(isinstance(reply["session"], str))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            out.append(ws.close_code)
        async with connect(ws_url(server, "/starlette/endpoint")) as ws:
            await ws.send("shout")
            out.append(await ws.recv())
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(100):
                codes = (await client.get("/disconnects")).json()
                if len(codes) == 2:
                    out.append(codes)
                    break
                await asyncio.sleep(0.05)
        return out

    assert run(go) == [
        "graphql-ws",
        "fastapi:hi",
        b"raw",
        403,
        {"n": 1},
        True,
        4000,
        "SHOUT",
        [4010, 1000],
    ]


def test_metrics_and_the_access_log_line(serve: Starter, mode: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    server = serve(SHARED_APP, "--metrics-bind", "127.0.0.1:0", "--access-log", workers=1)
    port = int(server.wait_for(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def go() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        during = {}
        async with connect(ws_url(server, "/?x=1"), compression=None) as ws:
            for message in ("one", "two", b"three"):
                await ws.send(message)
                await ws.recv()
            for _ in range(100):  # base mode: the worker sends its counters within 0.1 s
                during = await asyncio.to_thread(scrape)
                if during[("swserve_websocket_messages_total", (("direction", "in"),))] == 3:
                    break
                await asyncio.sleep(0.05)
            await ws.close(4003)
        return during

    during = run(go)
    assert during[("swserve_websocket_sessions_open", ())] == 1
    assert during[("swserve_websocket_sessions_opened_total", ())] == 1
    assert during[("swserve_websocket_messages_total", (("direction", "out"),))] == 3
    assert during[("swserve_websocket_message_bytes_total", (("direction", "in"),))] == 11
    server.wait_for(r'"GET /\?x=1 HTTP/1\.1" 101 11 .* ws in=3 out=3 close=4003$')
    after = {}
    for _ in range(100):
        after = scrape()
        if after[("swserve_websocket_sessions_open", ())] == 0:
            break
        time.sleep(0.05)
    assert after[("swserve_websocket_sessions_closed_total", (("code", "4xxx"),))] == 1
    assert after[("swserve_websocket_sessions_closed_total", (("code", "1000"),))] == 0


def test_a_client_that_leaves_during_the_handshake_is_a_disconnect(serve: Starter) -> None:
    server = serve(SHARED_APP, workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/hesitate"))
    got = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(200):
            got = client.get("/last").json()
            if got:
                break
            time.sleep(0.05)
    assert got == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


def test_timeout_does_not_apply_to_sessions(serve: Starter) -> None:
    server = serve(SHARED_APP, "--timeout", "1", workers=1)

    async def go() -> str:
        async with connect(ws_url(server)) as ws:
            await asyncio.sleep(2.5)  # well past --timeout
            await ws.send("late")
            return str(await ws.recv())

    assert run(go) == "late"


def test_wss_over_tls(serve: Starter, tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    server = serve(SHARED_APP, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), workers=1)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    async def go() -> tuple[str, str]:
        async with connect(f"wss://127.0.0.1:{server.port}/scope", ssl=ctx) as ws:
            scheme = json.loads(await ws.recv())["scheme"]
            await ws.send("secret" * 10_000)
            return scheme, str(await ws.recv())

    assert run(go) == ("wss", "secret" * 10_000)


def test_echo_with_the_h11_parser(serve: Starter) -> None:
    server = serve(SHARED_APP, "--http", "h11", workers=1)

    async def go() -> list[str | bytes]:
        async with connect(ws_url(server)) as ws:
            await ws.send("via h11")
            await ws.send(b"\x00")
            return [await ws.recv(), await ws.recv()]

    assert run(go) == ["via h11", b"\x00"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(handshake_request("/", Sec_WebSocket_Version="7"))
        assert read_head(sock)[0] == 426


def test_ctl_lists_sessions_per_worker(serve: Starter, mode: str, tmp_path: Path) -> None:
    from tests.integration.test_control import ctl_json

    sock = tmp_path / "ctl.sock"
    server = serve(SHARED_APP, "--control-socket", str(sock), workers=2)

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(ws_url(server, "/a")) as one, connect(ws_url(server, "/b")) as two:
            for ws in (one, two):
                await ws.send("x")
                await ws.recv()
            listed = await asyncio.to_thread(ctl_json, sock, "sessions")
            stats = await asyncio.to_thread(ctl_json, sock, "stats")
        return listed, stats

    listed, stats = run(go)
    if mode == "base":
        assert listed["sessions"] == []  # each worker holds its own
        assert stats["websocket_sessions"] is None
        return
    shown = listed["sessions"]
    # with --reactors 2 the second session is reactor 1's: ctl asks it, stats counts reactor 0's
    assert listed["total"] == 2
    assert stats["websocket_sessions"] == (1 if mode == "reactors" else 2)
    assert sorted(s["path"] for s in shown) == ["/a", "/b"]
    assert all(s["messages_in"] == s["messages_out"] == 1 for s in shown)
    assert sum(w["sessions"] for w in listed["per_worker"]) == 2
