"""WebSocket sessions through what workers go through: reload, death, shutdown.

- reload (SIGHUP): a retiring worker's sessions go on through --ws-drain-timeout,
  then get 1012; HTTP on other connections never fails, with ~1,000 sessions
  exchanging messages meanwhile;
- kill -9 of a worker (process mode): each of its sessions gets 1011 at once, the
  sessions of the other worker go on;
- shutdown (SIGTERM): 1001 after the drain, and a clean exit.

Process mode, base mode, and process mode with a second reactor (``--reactors 2``).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Server, Starter
from tests.integration.ws_helpers import run, ws_url

pytestmark = pytest.mark.modes("process", "base", "reactors")

APP = "ws_echo:app"


async def chat_until_closed(ws: ClientConnection, every: float, ended: dict[int, float]) -> int:
    """Send a message every ``every`` seconds and expect its echo, until the server closes:
    → the close code (also recorded with its time in ``ended``)."""
    n = 0
    try:
        while True:
            n += 1
            await ws.send(f"m{n}")
            assert await ws.recv() == f"m{n}"
            await asyncio.sleep(every)
    except ConnectionClosed:
        pass
    code = ws.close_code or 0
    ended[id(ws)] = time.monotonic()
    return code


async def chat_through_signal(server: Server, sig: int, count: int) -> tuple[list[int], float]:
    """``count`` sessions chat; send ``sig`` to the server; → the close code of each and
    the seconds from the signal to the first close."""
    sessions = [await connect(ws_url(server), ping_interval=None) for _ in range(count)]
    ended: dict[int, float] = {}
    chats = [asyncio.ensure_future(chat_until_closed(ws, 0.05, ended)) for ws in sessions]
    await asyncio.sleep(0.1)
    sent = time.monotonic()
    server.send(sig)
    codes = await asyncio.gather(*chats)
    return list(codes), min(ended.values()) - sent


def test_reload_drains_sessions_then_closes_them_with_1012(serve: Starter) -> None:
    server = serve(APP, "--ws-drain-timeout", "1.5", workers=2)

    async def go() -> tuple[list[int], float]:
        codes, first = await chat_through_signal(server, signal.SIGHUP, 10)
        # a session opened after the reload lands on a new worker and stays open
        async with connect(ws_url(server)) as fresh:
            await fresh.send("new")
            assert await fresh.recv() == "new"
        return codes, first

    codes, first = run(go)
    assert codes == [1012] * 10
    assert first >= 1.0  # they were drained, not cut at once (the drain is 1.5 s)
    server.wait_for(r"reload finished", timeout=20)


def test_shutdown_closes_sessions_with_1001_after_the_drain(serve: Starter) -> None:
    server = serve(APP, "--ws-drain-timeout", "0.5", workers=2)
    codes, first = run(lambda: chat_through_signal(server, signal.SIGTERM, 6))
    assert codes == [1001] * 6
    assert first >= 0.3
    assert server.wait_exit(30) == 0


def test_kill_9_closes_that_workers_sessions_with_1011_only(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip("base mode: a worker that dies takes its client sockets with it")
    server = serve(APP, workers=2)

    async def go() -> tuple[list[int], float, list[str]]:
        sessions: dict[str, list[ClientConnection]] = {}
        for _ in range(12):
            ws = await connect(ws_url(server, "/pid"), ping_interval=None)
            sessions.setdefault(str(await ws.recv()), []).append(ws)
        assert len(sessions) == 2, "the sessions should be spread over both workers"
        victim, survivor = sorted(sessions)
        os.kill(int(victim), signal.SIGKILL)
        killed = time.monotonic()

        async def close_code(ws: ClientConnection) -> int:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code or 0

        codes = await asyncio.gather(*(close_code(ws) for ws in sessions[victim]))
        took = time.monotonic() - killed
        replies = []
        for ws in sessions[survivor]:
            await ws.send("still here")
            replies.append(str(await ws.recv()))
            await ws.close()
        return list(codes), took, replies

    codes, took, replies = run(go)
    assert set(codes) == {1011}
    assert took < 5  # "within a second", with room for a loaded CI machine
    assert replies == ["still here"] * len(replies)
    server.wait_for(r"killed by SIGKILL")


@pytest.mark.timeout(180)
def test_reload_with_1000_sessions_and_http_traffic(serve: Starter) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 3000:
        pytest.skip("cannot raise RLIMIT_NOFILE to hold 1,000 sessions")
    server = serve(APP, "--ws-drain-timeout", "3", "--ws-ping-interval", "1", workers=2)
    total = 1000

    async def go() -> tuple[list[int], int, int]:
        sessions = []
        for start in range(0, total, 100):  # in batches: the listen backlog is finite
            sessions += await asyncio.gather(
                *(connect(ws_url(server), ping_interval=None) for _ in range(start, start + 100))
            )
        ended: dict[int, float] = {}
        chats = [asyncio.ensure_future(chat_until_closed(ws, 0.5, ended)) for ws in sessions]
        ok = failed = 0
        stop = asyncio.Event()

        async def http_load() -> None:
            nonlocal ok, failed
            async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
                while not stop.is_set():
                    try:
                        r = await client.get("/")
                        if r.status_code == 200 and r.text == "ok":
                            ok += 1
                        else:
                            failed += 1
                    except httpx.HTTPError:
                        failed += 1

        loads = [asyncio.ensure_future(http_load()) for _ in range(4)]
        await asyncio.sleep(1.0)
        server.send(signal.SIGHUP)
        codes = await asyncio.gather(*chats)
        await asyncio.sleep(0.5)  # HTTP goes on after the last session has closed
        stop.set()
        await asyncio.gather(*loads)
        return list(codes), ok, failed

    codes, ok, failed = run(go, timeout=150)
    assert failed == 0
    assert ok > 0
    assert sorted(set(codes)) == [1012], {c: codes.count(c) for c in set(codes)}
    assert len(codes) == total
    assert not any("Traceback" in line for line in server.stderr)


@pytest.mark.parametrize(
    ("args", "sig", "code"),
    [
        # --max-wait-time alone would SIGKILL the retiring worker after 1 s (1011, or a drop)
        (("--max-wait-time", "1", "--ws-drain-timeout", "2.5"), signal.SIGHUP, 1012),
        # --graceful-timeout alone would end the shutdown (and kill base-mode workers) at 1 s
        (("--graceful-timeout", "1", "--ws-drain-timeout", "2.5"), signal.SIGTERM, 1001),
        # the default drain: 5 s before --max-wait-time, so the deadline stays where it is
        (("--max-wait-time", "7.5"), signal.SIGHUP, 1012),
        # ... and 1 s before --graceful-timeout
        (("--graceful-timeout", "3.5"), signal.SIGTERM, 1001),
    ],
    ids=["reload", "shutdown", "reload-default", "shutdown-default"],
)
def test_no_worker_is_killed_before_its_sessions_drained(
    serve: Starter, args: tuple[str, ...], sig: int, code: int
) -> None:
    server = serve(APP, *args, workers=1)
    codes, first = run(lambda: chat_through_signal(server, sig, 4))
    assert codes == [code] * 4
    assert first >= 2.0
    assert not any("killing it" in line for line in server.stderr)
    if sig == signal.SIGTERM:
        assert server.wait_exit(30) == 0
