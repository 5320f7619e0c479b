"""Apps that report what they were told about the client, for the proxy tests.

``wsgi`` answers any path with the CGI/WSGI keys of its environ as JSON;
``asgi`` answers any path with its scope (bytes as latin-1, headers as
pairs).  ``/with-server`` sets the app's own Server and Date headers.
"""

from __future__ import annotations

import json

OWN = [("Server", "my-app"), ("Date", "Mon, 07 Nov 1994 00:00:00 GMT")]


def wsgi(environ, start_response):
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    body = json.dumps(data).encode()
    headers = [("Content-Type", "application/json")]
    if environ["PATH_INFO"].endswith("/with-server"):
        headers += OWN
    start_response("200 OK", headers)
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    data = {
        k: v for k, v in scope.items() if k not in ("headers", "state", "raw_path", "query_string")
    }
    data["raw_path"] = scope["raw_path"].decode("latin-1")
    data["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    body = json.dumps(data).encode()
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
