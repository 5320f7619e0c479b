"""A WSGI app whose /wait?g=FIFO request is held until the test opens the FIFO and writes.

It prints "gate: waiting PID" (the worker's stdout is line-buffered) once the
request is at the worker, so a test knows the request is in flight, and where,
without sleeping.  A FIFO opened by several waiting requests releases them all
when the test opens it for writing and closes it.  /pid answers the worker's
pid; every other path answers "ok" at once.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs


def app(environ, start_response):
    if environ["PATH_INFO"] == "/wait":
        fifo = parse_qs(environ["QUERY_STRING"])["g"][0]
        print(f"gate: waiting {os.getpid()}", flush=True)
        with open(fifo, "rb") as gate:  # blocks until the test opens it for writing
            gate.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released"]
    if environ["PATH_INFO"] == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
