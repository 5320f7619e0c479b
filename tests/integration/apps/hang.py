"""An ASGI app whose /block route blocks the event loop (a sync call in an async handler)."""

from __future__ import annotations

import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/block":
        time.sleep(3600)  # the loop stops: no heartbeat, no other request
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
