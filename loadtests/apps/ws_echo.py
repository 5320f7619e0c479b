"""A WebSocket echo app (ASGI 3): accepts every session, echoes each text or bytes message back
as it came, and returns when the client closes. HTTP requests get ``hello_asgi``'s answer, so
the harness's readiness probe (a plain GET) works on every server.

The same app for every server under test (swserve, uvicorn, granian): what is measured is the
server's framing, dispatch and I/O, not the app.
"""

from __future__ import annotations

from loadtests.apps.hello_asgi import RESPONSE_BODY, START, Receive, Scope, Send, lifespan


async def echo(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif kind == "websocket.disconnect":
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        await echo(receive, send)
    elif kind == "http":
        await send(START)
        await send(RESPONSE_BODY)
    elif kind == "lifespan":
        await lifespan(receive, send)
    else:
        raise RuntimeError(f"unsupported scope type {kind!r}")
