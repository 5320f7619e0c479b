"""WebSocket limits: server pings and their timeout, --ws-max-size, permessage-deflate
(negotiated, and a deflate bomb), and back-pressure both ways."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Starter
from tests.integration.ws_helpers import FrameReader, client_frame, raw_session, run, ws_url

pytestmark = pytest.mark.modes("process", "base")

APP = "ws_echo:app"


def test_server_pings_and_a_pong_keeps_the_session(serve: Starter) -> None:
    server = serve(APP, "--ws-ping-interval", "0.3", "--ws-ping-timeout", "1", workers=1)
    sock, rest = raw_session(server)
    with sock:
        reader = FrameReader(sock, rest)
        for _ in range(3):  # three rounds: each ping answered, the session stays open
            opcode, payload = reader.frame(timeout=10)
            assert opcode == 0x9
            assert payload.startswith(b"swserve")
            sock.sendall(client_frame(0xA, payload))
        sock.sendall(client_frame(0x1, b"alive"))
        while True:
            opcode, payload = reader.frame(timeout=10)
            if opcode == 0x9:
                sock.sendall(client_frame(0xA, payload))
                continue
            assert (opcode, payload) == (0x1, b"alive")
            break


def test_missing_pong_closes_with_1011(serve: Starter) -> None:
    server = serve(APP, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.4", workers=1)
    sock, rest = raw_session(server)
    with sock:
        started = time.monotonic()
        assert FrameReader(sock, rest).close_code(timeout=15) == 1011
        assert time.monotonic() - started >= 0.5  # the interval and the timeout both passed


def test_the_websockets_client_answers_pings_and_stays(serve: Starter) -> None:
    server = serve(APP, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.5", workers=1)

    async def go() -> str:
        async with connect(ws_url(server), ping_interval=None) as ws:
            await asyncio.sleep(1.5)  # several ping rounds, each answered by the client
            await ws.send("still")
            return str(await ws.recv())

    assert run(go) == "still"


def test_max_size_closes_with_1009(serve: Starter) -> None:
    server = serve(APP, "--ws-max-size", "1000", workers=1)

    async def go() -> list[object]:
        out: list[object] = []
        async with connect(ws_url(server), compression=None) as ws:
            await ws.send("a" * 1000)  # at the limit: fine
            out.append(len(await ws.recv()))
            await ws.send(b"b" * 1001)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            out.append(ws.close_code)
        return out

    assert run(go) == [1000, 1009]
    sock, rest = raw_session(server)  # fragments that add up to more than the limit
    with sock:
        sock.sendall(client_frame(0x2, b"x" * 600, fin=False) + client_frame(0x0, b"y" * 600))
        assert FrameReader(sock, rest).close_code() == 1009


def test_permessage_deflate_is_negotiated(serve: Starter) -> None:
    server = serve(APP, workers=1)

    async def go() -> tuple[list[str], str]:
        async with connect(ws_url(server), compression="deflate") as ws:
            names = [str(ext.name) for ext in ws.protocol.extensions]
            await ws.send("compress me " * 10_000)
            return names, str(await ws.recv())

    names, echoed = run(go)
    assert names == ["permessage-deflate"]
    assert echoed == "compress me " * 10_000


def test_permessage_deflate_can_be_turned_off(serve: Starter) -> None:
    server = serve(APP, "--no-ws-per-message-deflate", workers=1)

    async def go() -> list[str]:
        async with connect(ws_url(server), compression="deflate") as ws:
            return [str(ext.name) for ext in ws.protocol.extensions]

    assert run(go) == []


def test_deflate_bomb_closes_with_1009(serve: Starter) -> None:
    server = serve(APP, "--ws-max-size", "1MiB", workers=1)

    async def go() -> int | None:
        async with connect(ws_url(server), compression="deflate", max_size=None) as ws:
            await ws.send(b"\x00" * (64 * 1024 * 1024))  # 64 MiB of zeros: ~64 KiB on the wire
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert run(go) == 1009


def test_reading_stops_while_the_app_holds_max_queue_messages(serve: Starter) -> None:
    server = serve(APP, "--ws-max-queue", "4", workers=1)
    count, size = 600, 64 * 1024

    async def go() -> tuple[int, int]:
        async with connect(ws_url(server, "/slow?2"), compression=None, max_size=None) as ws:
            sent = 0

            async def send_all() -> None:
                nonlocal sent
                for i in range(count):
                    await ws.send(bytes([i % 256]) * size)
                    sent += 1

            sender = asyncio.ensure_future(send_all())
            await asyncio.sleep(1.0)  # the app reads nothing for 2 s
            sent_while_held = sent
            got = 0
            for _ in range(count):
                message = await ws.recv()
                assert len(message) == size
                got += 1
            await sender
            return sent_while_held, got

    sent_while_held, got = run(go)
    # without back-pressure the reactor would read all 39 MiB into the worker at once;
    # with it, what is in flight is bounded by the socket buffers
    assert sent_while_held < count
    assert got == count


def test_a_client_that_reads_slowly_holds_the_apps_sends_back(serve: Starter) -> None:
    server = serve(APP, workers=1)

    async def go() -> int:
        async with connect(ws_url(server, "/flood"), max_size=None, compression=None) as ws:
            await ws.send("400")  # 400 messages of 64 KiB
            await asyncio.sleep(1.0)  # read nothing meanwhile
            got = 0
            for _ in range(400):
                assert len(await ws.recv()) == 65536
                got += 1
            await ws.send("done")
            assert await ws.recv() == "done"
            return got

    assert run(go) == 400
