"""A WSGI app whose /wait?g=FIFO request is held until the test opens the FIFO and writes.

It prints "gate: waiting PID" (the worker's stdout is line-buffered) once the
request is at the worker, so a test knows the request is in flight, and where,
without sleeping (a FIFO releases one request: the test's open() for writing
waits for the reader).  /hold?f=FILE is the same gate for many requests at
once: each prints the line, then waits (polling, at most 30 s) until FILE
exists.  /pid answers the worker's pid; every other path answers "ok" at once.
"""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    if environ["PATH_INFO"] == "/wait":
        fifo = parse_qs(environ["QUERY_STRING"])["g"][0]
        print(f"gate: waiting {os.getpid()}", flush=True)
        with open(fifo, "rb") as gate:  # blocks until the test opens it for writing
            gate.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released"]
    if environ["PATH_INFO"] == "/hold":
        release = parse_qs(environ["QUERY_STRING"])["f"][0]
        print(f"gate: waiting {os.getpid()}", flush=True)
        for _ in range(3000):
            if os.path.exists(release):
                break
            time.sleep(0.01)  # the app polls a file, for at most 30 s
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released"]
    if environ["PATH_INFO"] == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
