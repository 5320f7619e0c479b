"""Server push across reactors and instances: ``--reactors 2``, and two instances sharing
a real ``redis-server`` (started here on a free port, stopped by pid) through
``--broadcast-url``, including Redis dying and coming back mid-test.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.conftest import Server, Starter
from tests.integration.redis_helpers import Redis, free_port
from tests.integration.ws_helpers import run, ws_url

pytestmark = pytest.mark.modes("process", "base")


def get(server: Server, path: str, **params: str) -> Any:
    with httpx.Client(timeout=30) as client:
        return client.get(f"{server.url}{path}", params=params).json()


async def aget(server: Server, path: str, **params: str) -> Any:
    return await asyncio.to_thread(get, server, path, **params)


async def session(server: Server, groups: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(ws_url(server, f"/ws?groups={groups}"))
    return ws, json.loads(await ws.recv())


def test_broadcast_reaches_members_on_both_reactors(serve: Starter, mode: str) -> None:
    if mode == "base":
        pytest.skip("--reactors is a process-mode setting")
    server = serve("push_app:app", "--reactors", "2")

    async def go() -> None:
        sessions = [await session(server, "all") for _ in range(6)]
        reactors = {int(me["id"]) >> 48 for _, me in sessions}
        assert reactors == {0, 1}  # the master spreads connections over both
        got = await aget(
            server, "/broadcast", group="all", msg="hello", exclude=sessions[0][1]["id"]
        )
        assert got["count"] == 5
        for ws, _ in sessions[1:]:
            assert await asyncio.wait_for(ws.recv(), 10) == "hello"
        for ws, me in sessions:  # and a push to each, wherever it lives
            assert (await aget(server, "/push", to=me["id"], msg="you"))["ok"]
            assert await asyncio.wait_for(ws.recv(), 10) == "you"
        for ws, _ in sessions:
            await ws.close()

    run(go)


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = Redis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.timeout(120)
def test_two_instances_share_broadcasts_through_redis(serve: Starter, redis_server: Redis) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    one = serve("push_app:app", "--broadcast-url", url, "--metrics-bind", "127.0.0.1:0")
    metrics = int(one.wait_for(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    two = serve("push_app:app", "--broadcast-url", url)

    async def broadcast_until_heard(
        sender: Server, listeners: list[ClientConnection], group: str, tag: str
    ) -> int:
        """Broadcast ``tag-i`` until every listener hears one (subscriptions come up
        asynchronously); → the i each listener first heard, all equal."""
        deadline = time.monotonic() + 30
        i = 0
        while True:
            await aget(sender, "/broadcast", group=group, msg=f"{tag}-{i}")
            try:
                heard = [await asyncio.wait_for(ws.recv(), 0.5) for ws in listeners]
                return int(str(heard[0]).rsplit("-", 1)[1])
            except TimeoutError:
                assert time.monotonic() < deadline, f"{tag}: never heard"
                i += 1

    async def drain(ws: ClientConnection) -> list[str]:
        out = []
        while True:
            try:
                out.append(str(await asyncio.wait_for(ws.recv(), 0.3)))
            except TimeoutError:
                return out

    async def go() -> None:
        a1, _ = await session(one, "chat")
        b1, _ = await session(two, "chat")
        await broadcast_until_heard(one, [b1], "chat", "warm")
        await drain(a1)
        await drain(b1)
        # a broadcast on one instance reaches members on both, once each
        got = await aget(one, "/broadcast", group="chat", msg="once")
        assert got["count"] == 1  # the local member; the remote one through Redis
        assert await asyncio.wait_for(b1.recv(), 10) == "once"
        assert await asyncio.wait_for(a1.recv(), 10) == "once"
        assert await drain(a1) == []  # never twice
        assert await drain(b1) == []
        got = await aget(two, "/broadcast", group="chat", msg="back")
        assert await asyncio.wait_for(a1.recv(), 10) == "back"
        assert await asyncio.wait_for(b1.recv(), 10) == "back"

        # Redis dies: local fan-out goes on
        await asyncio.to_thread(gauge, metrics, "swserve_push_redis_connected 1")
        redis_server.kill()
        for i in range(3):
            got = await aget(one, "/broadcast", group="chat", msg=f"local-{i}")
            assert got["count"] == 1
            assert await asyncio.wait_for(a1.recv(), 10) == f"local-{i}"
        await asyncio.to_thread(one.wait_for, "Redis is unreachable")
        # Redis returns: the instances reconnect and share again
        await asyncio.to_thread(gauge, metrics, "swserve_push_redis_connected 0")
        await asyncio.to_thread(gauge, metrics, "swserve_push_redis_errors_total 1")
        redis_server.start()
        await drain(b1)
        await broadcast_until_heard(one, [b1], "chat", "again")
        await broadcast_until_heard(two, [a1], "chat", "again2")
        for ws in (a1, b1):
            await ws.close()

    run(go, timeout=100)
    warnings = [line for line in one.logs().splitlines() if "Redis is unreachable" in line]
    assert len(warnings) == 1, warnings


def gauge(port: int, line: str) -> None:
    """Wait until /metrics shows ``line`` (the metrics are sampled, not pushed)."""
    deadline = time.monotonic() + 20
    while True:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if line in text.splitlines():
            return
        assert time.monotonic() < deadline, f"no {line!r} in:\n{text}"
        time.sleep(0.05)
