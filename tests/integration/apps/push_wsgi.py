"""A WSGI app that pushes (a WSGI server holds no WebSocket session: every push is gone)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import swserve


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    body = {
        "push": swserve.push(q["to"][0], "x").result(10),
        "is_open": swserve.is_open(q["to"][0]).result(10),
        "broadcast": swserve.broadcast("g", b"x").result(10),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
