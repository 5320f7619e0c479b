"""The access log: one line per answered request on ``swserve.access`` (off by default).

Written by the reactor, which alone knows the whole exchange: client, request
line, status, body bytes on the wire, time from the request's dispatch to its
last byte, and the worker that served it.  Formats: gunicorn's atoms (the
default is gunicorn's own default format), or ``json`` for one JSON object
per line.

================  ===================================================
atom              meaning
================  ===================================================
``%(h)s``         client address
``%(l)s``         ``-``
``%(u)s``         ``-`` (no authentication in swserve)
``%(t)s``         time, ``[22/Nov/2026:09:14:00 +0000]``
``%(r)s``         request line
``%(m)s``         method
``%(U)s``         path (without query)
``%(q)s``         query string
``%(H)s``         protocol, ``HTTP/1.1``
``%(s)s``         status
``%(b)s``         response body bytes (``-`` for none)
``%(B)s``         response body bytes (``0`` for none)
``%(f)s``         Referer
``%(a)s``         User-Agent
``%(T)s``         request time, whole seconds
``%(D)s``         request time, microseconds
``%(L)s``         request time, decimal seconds
``%(p)s``         the worker's pid
``%(w)s``         the worker's id
``%(S)s``         ``static`` for a ``--static`` file the reactor answered, else ``-``
================  ===================================================
"""

from __future__ import annotations

import json
import logging
import time
from typing import Final

from swserve.protocol.request import Request

log = logging.getLogger("swserve.access")

DEFAULT_FORMAT: Final = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def _header(req: Request, name: bytes) -> str:
    for key, value in req.headers:
        if key == name:
            return value.decode("latin-1")
    return "-"


class AccessLog:
    def __init__(self, fmt: str, exclude: tuple[str, ...]) -> None:
        self.fmt = fmt or DEFAULT_FORMAT
        self.json = self.fmt == "json"
        self.exclude = frozenset(exclude)

    def write(
        self,
        req: Request,
        client: str,
        status: int,
        sent: int,
        seconds: float,
        worker_id: int,
        worker_pid: int,
        websocket: tuple[int, int, int] | None = None,
        *,
        static: bool = False,
    ) -> None:
        """One line; ``websocket`` (messages in, messages out, close code) for a session's
        line, written when it ends: status 101, its duration and bytes sent."""
        target = req.target.decode("latin-1")
        path, _, query = target.partition("?")
        if path in self.exclude:
            return
        method = req.method.decode("latin-1")
        protocol = "HTTP/2.0" if req.version == b"2" else "HTTP/" + req.version.decode("latin-1")
        if self.json:
            log.info(
                "%s",
                json.dumps(
                    {
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "client": client,
                        "method": method,
                        "path": path,
                        "query": query,
                        "protocol": protocol,
                        "status": status,
                        "bytes": sent,
                        "duration_ms": round(seconds * 1000, 3),
                        "referer": _header(req, b"referer"),
                        "user_agent": _header(req, b"user-agent"),
                        "worker": worker_id,
                        "worker_pid": worker_pid,
                        **(
                            {
                                "ws_messages_in": websocket[0],
                                "ws_messages_out": websocket[1],
                                "ws_close_code": websocket[2],
                            }
                            if websocket is not None
                            else {}
                        ),
                        "static": static,
                    }
                ),
            )
            return
        atoms = {
            "h": client,
            "l": "-",
            "u": "-",
            "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
            "r": f"{method} {target} {protocol}",
            "m": method,
            "U": path,
            "q": query,
            "H": protocol,
            "s": status,
            "b": sent or "-",
            "B": sent,
            "f": _header(req, b"referer"),
            "a": _header(req, b"user-agent"),
            "T": int(seconds),
            "D": int(seconds * 1_000_000),
            "L": f"{seconds:.6f}",
            "p": worker_pid,
            "w": worker_id,
            "S": "static" if static else "-",
        }
        try:
            line = self.fmt % atoms
        except (KeyError, ValueError, TypeError) as exc:
            line = f"(bad --access-log-format: {exc}) " + DEFAULT_FORMAT % atoms
        if websocket is not None:
            line += " ws in={} out={} close={}".format(*websocket)
        log.info("%s", line)
