"""A WSGI app that reports what a worker sees of systemd socket activation.

GET / → JSON of LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES in the worker's
os.environ (null when unset) and the request's wsgi.url_scheme.
"""

from __future__ import annotations

import json
import os

NAMES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def app(environ, start_response):
    data = {name: os.environ.get(name) for name in NAMES}
    data["scheme"] = environ["wsgi.url_scheme"]
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
