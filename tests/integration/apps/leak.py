"""A WSGI app that leaks 16 MiB per request to /leak (kept in a module-level list)."""

from __future__ import annotations

import os

LEAKED: list[bytes] = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        LEAKED.append(os.urandom(16 * 1024 * 1024))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
