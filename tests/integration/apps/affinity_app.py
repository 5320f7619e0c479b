"""Which worker answered: its pid and slot, and the client address the app sees.

Routes:
  /who           → "PID SLOT REMOTE_ADDR"
  /wait?g=FIFO   → prints "affinity: waiting PID", then holds the request until the test
                   opens the FIFO and writes (the worker is then busy, without a sleep)
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs


def _slot() -> str:
    with open("/proc/self/cmdline", "rb") as f:  # "swserve: worker N" (setproctitle)
        title = f.read().replace(b"\0", b" ").decode().strip()
    return title.rsplit(" ", 1)[-1]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/wait":
        fifo = parse_qs(environ["QUERY_STRING"])["g"][0]
        print(f"affinity: waiting {os.getpid()}", flush=True)
        with open(fifo, "rb") as gate:
            gate.read()
    body = f"{os.getpid()} {_slot()} {environ['REMOTE_ADDR']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
