"""Mixed latency: /fast sleeps 1 ms and /slow 50 ms before answering.

Used to see whether slow requests hold up fast ones (head-of-line blocking inside a worker) and
how each server's concurrency model (threads, processes, dispatch) spreads the load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

DELAYS = {"/fast": 0.001, "/slow": 0.05}
NOT_FOUND = b"Not Found"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    delay = DELAYS.get(path)
    if delay is None:
        start_response(
            "404 Not Found",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(NOT_FOUND)))],
        )
        return [NOT_FOUND]
    time.sleep(delay)
    body = f"{path[1:]}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
