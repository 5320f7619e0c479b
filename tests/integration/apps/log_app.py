"""A WSGI app that writes to the logs, for the logging tests.

Routes (``app`` is WSGI; ``asgi_app`` serves /log only, for ASGI workers):
  /log     → logs "app line from PID" on swserve.error at INFO; body: the pid
  /stderr  → writes "stderr line from PID" straight to sys.stderr
  /print   → prints "stdout line from PID" to stdout
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("swserve.error")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    pid = os.getpid()
    if path == "/log":
        log.info("app line from %d", pid)
    elif path == "/stderr":
        sys.stderr.write(f"stderr line from {pid}\n")
        sys.stderr.flush()
    elif path == "/print":
        print(f"stdout line from {pid}", flush=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(pid).encode()]


async def asgi_app(scope, receive, send):
    """The same routes for ASGI (lifespan is not supported: swserve carries on)."""
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    pid = os.getpid()
    if scope["path"] == "/log":
        log.info("app line from %d", pid)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(pid).encode()})
