"""The chaos scenario's WSGI app: every request it holds is a file, so a kill shows what it held.

A request that carries ``X-Req-Id`` is registered as ``$CHAOS_DIR/<pid>-<id>-<route>``
while the app holds it (the file is removed when the response is done, or when the
iterable is closed).  A process killed with SIGKILL cannot remove its files: after the
kill they name exactly the requests it held.  Every response says which worker served
it (``X-Worker-Pid``).

Routes: ``/`` (the pid), ``/slow`` (50 ms), ``/upload`` (the body's length; a large one
is spooled by the server), ``/stream`` (five parts, 20 ms apart).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DIR = os.environ.get("CHAOS_DIR", "")


class _Held:
    """The response's iterable: unregisters the request when the server closes it."""

    def __init__(self, parts: Iterable[bytes], path: str) -> None:
        self.parts = parts
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        self.close()  # a server that never calls close() (uvicorn's WSGI) must not leave it

    def close(self) -> None:
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _stream() -> Iterator[bytes]:
    for i in range(5):
        if i:
            time.sleep(0.02)
        yield b"part %d\n" % i


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    route = environ["PATH_INFO"].strip("/") or "root"
    rid = environ.get("HTTP_X_REQ_ID", "")
    path = ""
    if DIR and rid:
        path = os.path.join(DIR, f"{os.getpid()}-{rid}-{route}")
        with open(path, "w"):
            pass
    pid = str(os.getpid())
    headers = [("Content-Type", "text/plain"), ("X-Worker-Pid", pid)]
    if route == "slow":
        time.sleep(0.05)
    if route == "upload":
        size = 0
        stream = environ["wsgi.input"]
        while chunk := stream.read(65536):
            size += len(chunk)
        body: Iterable[bytes] = [str(size).encode()]
    elif route == "stream":
        body = _stream()
    else:
        body = [pid.encode()]
    start_response("200 OK", headers)
    return _Held(body, path)
