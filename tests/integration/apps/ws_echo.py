"""An ASGI WebSocket echo app for the tests and the load tests.

``/`` (any path but the ones below): accept, echo every text and bytes message
as it comes, end when the client closes.  Plain HTTP requests get ``ok``.

Paths that exercise the ASGI websocket spec (tests/integration/test_websocket.py):

- ``/scope``: accept, then send the scope (JSON) as text;
- ``/subprotocol``: accept with the client's first subprotocol and an extra header;
- ``/deny``: an HTTP denial response (418, a header, a body);
- ``/close-early``: close before accepting (the client gets 403);
- ``/close``: accept, then close with 4001 and a reason;
- ``/disconnect``: accept, wait for the disconnect, and report its code through ``/last``;
- ``/raise``: accept, then raise (the client gets 1011);
- ``/raise-early``: raise before accepting (500);
- ``/hesitate``: wait for a message before accepting, record it through ``/last``;
- ``/pid``: accept, send the worker's pid, then echo;
- ``/slow?SECONDS``: accept, read nothing for that long (default 2), then echo;
- ``/flood``: accept, send N (the first message, as text) messages of 64 KiB.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

DISCONNECTS: list[dict[str, Any]] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return  # no lifespan (--lifespan auto carries on)
    if scope["type"] == "http":
        body = b"ok"
        if scope["path"] == "/last":
            body = json.dumps(DISCONNECTS).encode()
        elif scope["path"] == "/pid":
            body = str(os.getpid()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    assert scope["type"] == "websocket"
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 418,
                "headers": [(b"x-denied", b"yes"), (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no tea", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b" for you"})
        return
    if path == "/close-early":
        await send({"type": "websocket.close"})
        return
    if path == "/hesitate":  # wait for a second message before accepting: the disconnect
        DISCONNECTS.append(await receive())
        return
    if path == "/raise-early":
        raise RuntimeError("boom before accept")
    if path == "/subprotocol":
        offered = scope["subprotocols"]
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-extra", b"1")],
            }
        )
    else:
        await send({"type": "websocket.accept"})
    if path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "state")}
        shown["raw_path"] = scope["raw_path"].decode()
        shown["query_string"] = scope["query_string"].decode()
        shown["header_names"] = [n.decode() for n, _ in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps(shown)})
    elif path == "/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        return
    elif path == "/raise":
        raise RuntimeError("boom after accept")
    elif path == "/pid":
        await send({"type": "websocket.send", "text": str(os.getpid())})
    elif path == "/disconnect":
        message = await receive()
        DISCONNECTS.append(message)
        return
    elif path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"2"))  # read nothing meanwhile
    elif path == "/flood":
        first = await receive()
        count = int(first["text"])
        chunk = b"x" * 65536
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": chunk})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
