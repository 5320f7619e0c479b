"""A WSGI app whose /wait?g=FIFO request is held until the test opens the FIFO and writes.

It prints "gate: waiting" (the worker's stdout is line-buffered) once the
request is at the worker, so a test knows the request is in flight without
sleeping; every other path answers "ok" at once.
"""

from __future__ import annotations

from urllib.parse import parse_qs


def app(environ, start_response):
    if environ["PATH_INFO"] == "/wait":
        fifo = parse_qs(environ["QUERY_STRING"])["g"][0]
        print("gate: waiting", flush=True)
        with open(fifo, "rb") as gate:  # blocks until the test opens it for writing
            gate.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
