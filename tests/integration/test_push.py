"""Server push (issue #13) against real WebSocket clients, in process and base mode.

A push from any worker reaches a session held by another, even while that
worker is busy; pushes from plain HTTP handlers (ASGI, WSGI, blocking code);
gone sessions reported as such; groups with join/leave/broadcast/exclusion,
cleaned when a session closes; a slow reader loses pushes alone.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.conftest import Server, Starter
from tests.integration.ws_helpers import raw_session, run, ws_url

pytestmark = pytest.mark.modes("process", "base")

SHARED_APP = "push_app:app"
SHARED_ARGS = ("--task-workers", "1")  # a task worker pushes too


def get(server: Server, path: str, **params: str) -> Any:
    """One request on a connection of its own (base mode: any worker may accept it)."""
    with httpx.Client(timeout=30) as client:
        return client.get(f"{server.url}{path}", params=params).json()


async def aget(server: Server, path: str, **params: str) -> Any:
    return await asyncio.to_thread(get, server, path, **params)


async def session(server: Server, groups: str = "") -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(ws_url(server, f"/ws?groups={groups}"), max_size=None)
    return ws, json.loads(await ws.recv())


async def closed(server: Server, sid: str) -> None:
    """Wait (with a deadline) until the server has seen the session end."""
    deadline = time.monotonic() + 10
    while (await aget(server, "/is_open", sid=sid))["ok"]:
        assert time.monotonic() < deadline, "the session never ended"
        await asyncio.sleep(0.02)


async def nothing_before(ws: ClientConnection, server: Server, sid: str) -> None:
    """No message is waiting for ``ws``: a marker pushed now is the next one it reads."""
    assert (await aget(server, "/push", to=sid, msg="marker"))["ok"]
    assert await asyncio.wait_for(ws.recv(), 10) == "marker"


def test_push_reaches_a_session_held_by_a_busy_worker(
    shared_server: Server, mode: str, tmp_path: Path
) -> None:
    """Process mode: the worker holding the session has its whole loop blocked
    (``time.sleep``) and the message still arrives: the reactor writes it.  Base
    mode: its loop is the reactor, so it is busy in a long request that awaits."""
    mark = tmp_path / "busy"
    long = "/block" if mode == "process" else "/wait"

    async def go() -> None:
        ws, me = await session(shared_server)
        done = threading.Event()

        def hold() -> None:  # try until the long request lands on the session's worker
            while (
                get(shared_server, long, pid=str(me["pid"]), s="8", mark=str(mark)).get("pid")
                != me["pid"]
                or not mark.exists()
            ):
                pass
            done.set()

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not mark.exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        reply: dict[str, Any] = {}
        for attempt in range(50):  # base mode: the kernel may hand the push to B itself
            reply = await aget(shared_server, "/push", to=me["id"], msg=f"hi {attempt}")
            assert reply["ok"] is True
            assert await asyncio.wait_for(ws.recv(), 5) == f"hi {attempt}"
            if reply["pid"] != me["pid"]:
                break
        assert reply["pid"] != me["pid"]
        assert not done.is_set(), "the message came only after the long request"
        await ws.close()
        thread.join(20)

    run(go)


def test_push_from_plain_handlers(shared_server: Server) -> None:
    """ASGI (awaitable and bytes), blocking code in a thread, a WSGI app, a process the
    worker starts (it learns where the reactors are from SWSERVE_PUSH), and a task
    worker (the manager's child: the manager sets SWSERVE_PUSH for every kind)."""

    async def go() -> list[Any]:
        ws, me = await session(shared_server)
        oks = []
        for path, msg in (("/push", "a"), ("/push-bytes", "b"), ("/push-sync", "c")):
            oks.append((await aget(shared_server, path, to=me["id"], msg=msg))["ok"])
        oks.append((await aget(shared_server, "/wsgi/push", to=me["id"], msg="d"))["ok"])
        oks.append((await aget(shared_server, "/push-child", to=me["id"], msg="e"))["ok"])
        oks.append((await aget(shared_server, "/push-task", to=me["id"], msg="f"))["ok"])
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(6)]
        await ws.close()
        return [oks, got]

    assert run(go) == [[True] * 6, ["a", b"b", "c", "d", "e", "f"]]


def test_order_kept_from_one_sender(shared_server: Server) -> None:
    async def go() -> list[str]:
        ws, me = await session(shared_server)
        assert (await aget(shared_server, "/push-many", to=me["id"], msg="m", n="500"))["ok"]
        got = [str(await asyncio.wait_for(ws.recv(), 10)) for _ in range(500)]
        await ws.close()
        return got

    assert run(go) == [f"m{i}" for i in range(500)]


def test_push_to_a_closed_session_is_gone(shared_server: Server) -> None:
    async def go() -> list[Any]:
        ws, me = await session(shared_server)
        await ws.close()
        await closed(shared_server, me["id"])
        out = [(await aget(shared_server, "/push", to=me["id"], msg="late"))["ok"]]
        out.append((await aget(shared_server, "/push-sync", to=me["id"], msg="late"))["ok"])
        out.append((await aget(shared_server, "/join", sid=me["id"], group="g"))["ok"])
        out.append((await aget(shared_server, "/close", sid=me["id"]))["ok"])
        out += [
            (await aget(shared_server, "/push", to=never, msg="x"))["ok"]
            for never in ("123456789", "abc", "1.2.3")
        ]
        return out

    assert run(go) == [False] * 7


def test_close_from_another_worker(shared_server: Server) -> None:
    async def go() -> tuple[Any, Any, Any]:
        ws, me = await session(shared_server)
        ok = (await aget(shared_server, "/close", sid=me["id"], code="4001", reason="bye"))["ok"]
        await asyncio.wait_for(ws.wait_closed(), 10)
        return ok, ws.close_code, ws.close_reason

    assert run(go) == (True, 4001, "bye")


def test_groups_join_leave_broadcast_exclude(shared_server: Server) -> None:
    async def go() -> None:
        s1, m1 = await session(shared_server, "room")
        s2, m2 = await session(shared_server, "room")
        s3, _ = await session(shared_server, "room")
        s4, m4 = await session(shared_server)  # joins from another request, below
        got = await aget(shared_server, "/broadcast", group="room", msg="one", exclude=m1["id"])
        assert got["count"] == 2
        assert [await s2.recv(), await s3.recv()] == ["one", "one"]
        await nothing_before(s1, shared_server, m1["id"])

        assert (await aget(shared_server, "/leave", sid=m2["id"], group="room"))["ok"] is True
        assert (await aget(shared_server, "/leave", sid=m2["id"], group="room"))["ok"] is False
        assert (await aget(shared_server, "/join", sid=m4["id"], group="room"))["ok"] is True
        got = await aget(shared_server, "/broadcast", group="room", msg="two")
        assert got["count"] == 3
        assert [await s1.recv(), await s3.recv(), await s4.recv()] == ["two"] * 3
        await nothing_before(s2, shared_server, m2["id"])
        assert (await aget(shared_server, "/broadcast", group="nobody", msg="x"))["count"] == 0
        for ws in (s1, s2, s3, s4):
            await ws.close()

    run(go)


def test_membership_cleaned_on_close(shared_server: Server) -> None:
    async def go() -> list[int]:
        s1, m1 = await session(shared_server, "tidy,other")
        s2, m2 = await session(shared_server, "tidy")
        counts = [(await aget(shared_server, "/broadcast", group="tidy", msg="x"))["count"]]
        await s1.close()
        await closed(shared_server, m1["id"])
        counts.append((await aget(shared_server, "/broadcast", group="tidy", msg="y"))["count"])
        counts.append((await aget(shared_server, "/broadcast", group="other", msg="z"))["count"])
        assert [await s2.recv(), await s2.recv()] == ["x", "y"]
        await s2.close()
        await closed(shared_server, m2["id"])
        counts.append((await aget(shared_server, "/broadcast", group="tidy", msg="w"))["count"])
        return counts

    assert run(go) == [2, 1, 0, 0]


def test_slow_reader_loses_pushes_alone(shared_server: Server) -> None:
    """A client that stops reading misses broadcasts once its buffer is over the high
    mark; a reader in the same group gets every one, in order."""
    sock, _ = raw_session(shared_server, "/ws?groups=slow")  # never reads again
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    n, size = 300, 32 * 1024

    async def go() -> tuple[int, list[int]]:
        ws, _ = await session(shared_server, "slow")
        got: list[int] = []

        async def read() -> None:
            while len(got) < n:
                data = await asyncio.wait_for(ws.recv(), 30)
                raw = data if isinstance(data, bytes) else data.encode()
                got.append(int(raw.rstrip(b".")))

        task = asyncio.ensure_future(read())
        sent = await aget(shared_server, "/broadcast-big", group="slow", n=str(n), size=str(size))
        await task
        await ws.close()
        return sent["count"], got

    try:
        count, got = run(go)
    finally:
        sock.close()
    assert got == list(range(n))  # the fast reader: every message, in order
    assert n < count < 2 * n  # the slow one: some, then dropped


def test_push_from_a_wsgi_worker(serve: Starter) -> None:
    """The blocking form in a WSGI worker's request: answers, never an exception."""
    server = serve("push_wsgi:app", "--threads", "2")
    assert get(server, "/", to="12345") == {"push": False, "is_open": False, "broadcast": 0}
    assert "Traceback" not in server.logs()


def test_push_metrics(serve: Starter) -> None:
    server = serve(SHARED_APP, "--metrics-bind", "127.0.0.1:0")
    port = int(server.wait_for(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))

    async def go() -> None:
        ws, me = await session(server, "m")
        assert (await aget(server, "/push", to=me["id"], msg="a"))["ok"]
        assert (await aget(server, "/broadcast", group="m", msg="b"))["count"] == 1
        assert [await ws.recv(), await ws.recv()] == ["a", "b"]
        await ws.close()
        await closed(server, me["id"])
        assert not (await aget(server, "/push", to=me["id"], msg="c"))["ok"]

    run(go)
    want = {
        'swserve_push_messages_total{outcome="delivered"} 2',
        'swserve_push_messages_total{outcome="gone"} 1',
        'swserve_push_broadcasts_total{source="local"} 1',
    }
    deadline = time.monotonic() + 10
    while True:  # base mode: the workers send their counts a little later
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if want <= set(text.splitlines()):
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
