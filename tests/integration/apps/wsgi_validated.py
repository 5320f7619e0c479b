"""A WSGI app wrapped in wsgiref.validate.validator: any PEP 3333 violation by the server raises."""

from __future__ import annotations

import io
import json
from urllib.parse import unquote
from wsgiref.validate import validator


class Closing:
    """An iterable whose close() leaves a marker file for the test to find."""

    def __init__(self, parts, marker):
        self.parts = parts
        self.marker = marker

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        with open(self.marker, "w") as f:
            f.write("closed")


def raw_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/environ"):
        data = {k: v for k, v in environ.items() if isinstance(v, str)}
        body = json.dumps(data).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/lines":
        stream = environ["wsgi.input"]
        first = stream.readline().decode()
        rest = [line.decode() for line in stream]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"readline": first, "rest": rest}).encode()]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 10_000), 4096)
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b"], unquote(environ["QUERY_STRING"][2:]))
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            import sys

            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"replaced"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


validated = validator(raw_app)


def bad_app(environ, start_response):
    """Deliberately broken outputs (not validated: the validator would catch them first)."""
    path = environ["PATH_INFO"]
    if path == "/bad/str-body":
        start_response("200 OK", [])
        return "a str, not bytes"
    if path == "/bad/str-iterable":
        start_response("200 OK", [])
        return ["a", "b"]
    if path == "/bad/header-name":
        start_response("200 OK", [("Bad Name", "x")])
        return [b""]
    if path == "/bad/header-value":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b""]
    if path == "/bad/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]
    start_response("200 OK", [])
    return None


def app(environ, start_response):
    if environ["PATH_INFO"].startswith("/bad/"):
        return bad_app(environ, start_response)
    return validated(environ, start_response)
