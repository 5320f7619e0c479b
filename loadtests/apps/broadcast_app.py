"""Broadcast fan-out, the same app on two stacks (``loadtests/broadcast.py``).

``BROADCAST_BACKEND=swserve``: sessions join the group ``all``; ``GET /send?m=…``
calls ``swserve.abroadcast`` (one IPC frame, fan-out in the reactor).

``BROADCAST_BACKEND=broadcaster`` with ``BROADCAST_URL=redis://…``: what users run on
uvicorn today: the ``broadcaster`` package over Redis pub/sub; every session
subscribes to the channel ``all`` and forwards what it gets; ``/send`` publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import urllib.parse
from typing import Any

BACKEND = os.environ.get("BROADCAST_BACKEND", "swserve")
_hub: Any = None
_keep: list[asyncio.Future[None]] = []


async def hold(entered: asyncio.Event) -> None:
    async with _hub.subscribe(channel="all") as subscriber:
        # broadcaster 0.3.1's Redis listener may start before the subscription exists,
        # find no channel and stop: wake it until a probe of ours comes back
        while not entered.is_set():
            _hub._backend._ready.set()
            await _hub.publish(channel="all", message="probe")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.get(), 0.2)
                entered.set()
        async for _ in subscriber:
            pass


async def answer(send: Any, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Any, send: Any) -> None:
    global _hub
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if BACKEND == "broadcaster":
                broadcaster = importlib.import_module("broadcaster")  # only in the anchors venv

                _hub = broadcaster.Broadcast(os.environ["BROADCAST_URL"])
                await _hub.connect()
                # broadcaster's first subscribe on a channel races with concurrent ones
                # (each sees no subscriber, the last one's set wins): hold one from the start
                entered = asyncio.Event()
                _keep.append(asyncio.ensure_future(hold(entered)))
                await entered.wait()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in _keep:
                task.cancel()
            if _hub is not None:
                await _hub.disconnect()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def session_swserve(scope: Any, receive: Any, send: Any) -> None:
    import swserve

    await receive()
    await send({"type": "websocket.accept"})
    await swserve.ajoin(scope["extensions"]["swserve.session"]["id"], "all")
    await send({"type": "websocket.send", "text": "ready"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def session_broadcaster(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    async with _hub.subscribe(channel="all") as subscriber:
        await send({"type": "websocket.send", "text": "ready"})

        async def forward() -> None:
            async for event in subscriber:
                if event.message != "probe":  # another worker starting
                    await send({"type": "websocket.send", "text": event.message})

        task = asyncio.ensure_future(forward())
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def app(scope: Any, receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(receive, send)
    elif kind == "websocket":
        if BACKEND == "swserve":
            await session_swserve(scope, receive, send)
        else:
            await session_broadcaster(scope, receive, send)
    else:
        query = urllib.parse.parse_qs(scope["query_string"].decode())
        message = query.get("m", [""])[0]
        if scope["path"] == "/send":
            if BACKEND == "swserve":
                import swserve

                count = await swserve.abroadcast("all", message)
            else:
                await _hub.publish(channel="all", message=message)
                count = -1
            await answer(send, str(count).encode())
        else:
            await answer(send, b"ok")
