"""A WSGI app for the HTTP/2 tests.

Routes: /pid (this worker's pid, after ?s= seconds; a line with ?nl=1), /echo (the request body
back, with its length), /big?n= (n bytes), /proto (SERVER_PROTOCOL), /crash
(the worker exits at once, mid-request),
/crash-mid (it exits after its response started).
"""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/pid":
        time.sleep(float(query.get("s", ["0"])[0]))
        body = str(os.getpid()).encode() + (b"\n" if "nl" in query else b"")
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/big":
        n = int(query["n"][0])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * min(65536, n - i) for i in range(0, n, 65536))
    elif path == "/proto":
        body = environ["SERVER_PROTOCOL"].encode()
    elif path == "/crash":
        os._exit(3)
    elif path == "/crash-mid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return crash_after_first_part()
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "x")],
    )
    return [body]


def crash_after_first_part():
    yield b"first part"
    time.sleep(0.2)
    os._exit(3)
