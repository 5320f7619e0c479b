"""``mixed.py`` with the slow answer told apart by its status (202), for h2load's per-request
log (which has the status and the latency of each request, but not its path)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from mixed import DELAYS  # type: ignore[import-not-found]  # run from loadtests/apps


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    time.sleep(DELAYS.get(path, 0.0))
    status = "202 Accepted" if path == "/slow" else "200 OK"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]
