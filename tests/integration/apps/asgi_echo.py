"""An ASGI app that checks the scope and the message order while it answers.

Routes: /scope (JSON of the scope), /echo (request body), /stream (three
parts), /sleep?s=N, /pid, /status?code=N&cl=M (that status and Content-Length), /disconnect (waits for http.disconnect, then
writes a marker file named by ?f=), /error, /lifespan (the state set at
startup), /barrier?n=K (held until K requests are inside at once, once per
worker), /big?n=N (N chunks of 64 KiB; prints "big: done"), /hold?f=FILE (prints "hold: inside N", held until FILE exists);
anything else echoes the body, with x-path and x-query headers.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import parse_qs

SPEC_KEYS = {
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
}


_inside = 0  # /barrier: requests inside the app now (one round per worker)
_full = asyncio.Event()
_held = 0  # /hold: requests inside the app now


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    assert scope.keys() >= SPEC_KEYS, SPEC_KEYS - scope.keys()
    assert scope["asgi"]["version"] == "3.0"
    assert all(name == name.lower() for name, _ in scope["headers"])
    query = parse_qs(scope["query_string"].decode())
    path = scope["path"]
    if path.startswith("/scope"):
        data = {k: v for k, v in scope.items() if k not in ("headers", "state")}
        data["raw_path"] = scope["raw_path"].decode("latin-1")
        data["query_string"] = scope["query_string"].decode("latin-1")
        data["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        await respond(send, json.dumps(data).encode(), b"application/json")
        return
    if path in ("/cl-long", "/cl-short"):  # a body that does not match its Content-Length
        declared = b"5" if path == "/cl-long" else b"20"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", declared)],
            }
        )
        await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
        await send({"type": "http.response.body", "body": b"abc"})
        return
    if path == "/barrier":  # wait until n requests are inside at once; answer how many
        global _inside
        _inside += 1
        size = int(query["n"][0])
        if _inside >= size:
            _full.set()
        await asyncio.wait_for(_full.wait(), 15)
        await respond(send, str(_inside).encode())
        _inside -= 1
        return
    if path == "/hold":  # say how many are inside, then wait for the file ?f= to exist
        global _held
        _held += 1
        print(f"hold: inside {_held}", flush=True)
        peak = _held
        release = Path(query["f"][0])
        for _ in range(3000):  # polling a file, for at most 30 s
            if release.exists():
                break
            await asyncio.sleep(0.01)
        _held -= 1
        await respond(send, str(peak).encode())
        return
    if path == "/big":  # n chunks of 64 KiB; prints "big: done" once all are sent
        await send({"type": "http.response.start", "status": 200, "headers": []})
        block = b"x" * 65536
        for _ in range(int(query["n"][0])):
            await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        print("big: done", flush=True)
        return
    if path == "/status":
        headers = [(b"content-length", query["cl"][0].encode())] if "cl" in query else []
        status = int(query["code"][0])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/lifespan":
        await respond(send, scope["state"]["started"].encode())
        return
    if path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/sleep":
        await asyncio.sleep(float(query.get("s", ["1"])[0]))
        await respond(send, b"slept")
        return
    if path == "/pid":
        await respond(send, str(os.getpid()).encode())
        return
    if path == "/disconnect":
        body = await receive()
        assert body["type"] == "http.request"
        message = await receive()
        assert message["type"] == "http.disconnect"
        Path(query["f"][0]).write_text("disconnected")
        return
    if path == "/after":
        await respond(send, b"sent")
        message = await asyncio.wait_for(receive(), 5)  # must not hang: the response is done
        assert message["type"] == "http.disconnect", message
        return
    if path == "/echo-parts":
        parts = 0
        while True:
            message = await receive()
            parts += 1
            if not message.get("more_body"):
                break
        await respond(send, str(parts).encode(), b"application/json")
        return
    if path == "/error":
        raise RuntimeError("boom")
    chunks = []
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    where = [(b"x-path", scope["raw_path"]), (b"x-query", scope["query_string"])]
    await respond(send, b"".join(chunks), extra=where)


async def respond(send, body: bytes, content_type: bytes = b"text/plain", extra=()) -> None:
    headers = [(b"content-type", content_type), *extra]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
