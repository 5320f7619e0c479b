"""File responses: WSGI ``wsgi.file_wrapper`` and ASGI ``http.response.pathsend``.

The file is $FILE_APP_PATH.  Routes (both apps):
  /file        → the whole file
  /file?skip=N → the file from byte N (WSGI: seek before wrapping)
  /pid         → the worker's pid
  anything else → "app: PATH" (what a static prefix falls through to)
"""

from __future__ import annotations

import os


def _path() -> str:
    return os.environ["FILE_APP_PATH"]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/file":
        f = open(_path(), "rb")  # noqa: SIM115  # closed by the server (close())
        skip = environ["QUERY_STRING"].removeprefix("skip=")
        if skip.isdigit():
            f.seek(int(skip))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)
    body = b"%d" % os.getpid() if path == "/pid" else b"app: " + path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/file":
        assert "http.response.pathsend" in scope["extensions"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        await send({"type": "http.response.pathsend", "path": _path()})
        return
    body = b"%d" % os.getpid() if path == "/pid" else b"app: " + path.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
