"""Large bodies: a 64 KiB response at GET / and a request-body echo at POST /echo.

``app`` is the WSGI version, ``asgi_app`` the ASGI 3 one; both answer the same way, so the two
interfaces can be compared on the same payloads. The echo reads the whole body before answering
(as most frameworks do), which exercises the server's request buffering and flow control.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

BIG_BODY = b"x" * (64 * 1024)
NOT_FOUND = b"Not Found"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _headers(length: int, content_type: str) -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("Content-Length", str(length))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    if method == "GET" and path == "/":
        start_response("200 OK", _headers(len(BIG_BODY), "application/octet-stream"))
        return [BIG_BODY]
    if method == "POST" and path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", _headers(len(body), "application/octet-stream"))
        return [body]
    start_response("404 Not Found", _headers(len(NOT_FOUND), "text/plain"))
    return [NOT_FOUND]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/":
        await _respond(send, 200, BIG_BODY, b"application/octet-stream")
    elif method == "POST" and path == "/echo":
        await _respond(send, 200, await _read_body(receive), b"application/octet-stream")
    else:
        await _respond(send, 404, NOT_FOUND, b"text/plain")
