"""Apps that send response headers a server must not put on the wire.

/newline: a value with CR LF (response splitting), /name: a name with a space,
/nul: a value with NUL.  Any other path answers 200 "fine".
"""

from __future__ import annotations

BAD = {
    "/newline": ("X-Bad", "a\r\nSet-Cookie: injected=1"),
    "/name": ("X Bad", "1"),
    "/nul": ("X-Bad", "a\x00b"),
}


def wsgi(environ, start_response):
    header = BAD.get(environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain"), *([header] if header else [])])
    return [b"fine"]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    header = BAD.get(scope["path"])
    headers = [(b"content-type", b"text/plain")]
    if header:
        headers.append((header[0].encode(), header[1].encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"fine"})
