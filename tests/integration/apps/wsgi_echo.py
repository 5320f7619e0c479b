"""A WSGI app that reports what it received; used by the wire tests.

Routes:
  /echo      → body: the request body; headers x-method, x-path, x-query
  /environ   → JSON of the str-valued environ keys
  /stream    → three chunks, no Content-Length (chunked on the wire)
  /sleep?s=N[&f=FILE] → writes the worker pid to FILE, sleeps N seconds, then "slept"
  /pid       → the worker's pid
  /status?code=N → that status, empty body
  /print     → prints a line to stdout, then "printed"
  /error     → raises before start_response
  /late-error → raises after the first chunk
  /drip?n=N&d=S[&f=FILE] → N chunks, one every S seconds; writes "closed" to FILE on close()
"""

from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    if path == "/environ":
        data = {k: v for k, v in environ.items() if isinstance(v, str)}
        body = json.dumps(data).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    if path in ("/cl-long", "/cl-short"):  # a body that does not match its Content-Length
        declared = "5" if path == "/cl-long" else "20"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
        return iter([b"0123456789", b"abc"])
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one ", b"two ", b"three"])
    if path == "/sleep":
        if "f" in query:  # tell the test which worker holds the request
            with open(query["f"][0], "w") as marker:
                marker.write(str(os.getpid()))
        time.sleep(float(query.get("s", ["1"])[0]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/status":
        code = int(query["code"][0])
        start_response(f"{code} Whatever", [])
        return [b""]
    if path == "/print":
        print(f"line from the app {query.get('n', ['0'])[0]} " + "x" * 200)
        sys.stdout.flush()
        start_response("200 OK", [])
        return [b"printed"]
    if path == "/input-type":
        start_response("200 OK", [])
        return [type(environ["wsgi.input"]).__name__.encode()]
    if path == "/error":
        raise RuntimeError("boom before start")
    if path == "/drip":
        return _drip(query, start_response)
    if path == "/late-error":

        def gen():
            yield b"partial"
            raise RuntimeError("boom after start")

        start_response("200 OK", [])
        return gen()
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("X-Method", environ["REQUEST_METHOD"]),
            ("X-Path", path),
            ("X-Query", environ["QUERY_STRING"]),
        ],
    )
    return [body]


class _Drip:
    """A slow stream (SSE, long polling) whose close() the test can see."""

    def __init__(self, n: int, delay: float, marker: str | None) -> None:
        self.n, self.delay, self.marker = n, delay, marker

    def __iter__(self):
        for i in range(self.n):
            if i:
                time.sleep(self.delay)
            yield b"drip %d\n" % i

    def close(self) -> None:
        if self.marker:
            with open(self.marker, "w") as f:
                f.write("closed")


def _drip(query, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    marker = query["f"][0] if "f" in query else None
    return _Drip(int(query.get("n", ["20"])[0]), float(query.get("d", ["1"])[0]), marker)
