"""For --chroot: what the worker's file system looks like, and that it still serves.

WSGI ``app`` and ASGI ``asgi_app``, both imported before the worker chroots:
  GET /ls     → the names in "/" as the worker sees them, one per line
  POST /len   → the length of the request body (spooled to DIR/tmp when large)
  anything    → the worker's pid
"""

from __future__ import annotations

import os


def _answer(method: str, path: str, body: bytes) -> bytes:
    if path == "/ls":
        return "\n".join(sorted(os.listdir("/"))).encode()
    if method == "POST":
        return str(len(body)).encode()
    return str(os.getpid()).encode()


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    out = _answer(environ["REQUEST_METHOD"], environ["PATH_INFO"], body)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = _answer(scope["method"], scope["path"], body)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": out})
