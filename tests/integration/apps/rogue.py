"""A WSGI app that can corrupt its worker's IPC stream, as a buggy C extension might."""

from __future__ import annotations

import os


def app(environ, start_response):
    if environ["PATH_INFO"] == "/garbage":
        for name in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:"):
                os.write(int(name), b"\xde\xad\xbe\xef" * 16)  # not a frame
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
