"""An app factory (``--factory``): create_app() returns the WSGI app; calling
create_app as the app itself would fail."""

from __future__ import annotations

CALLS: list[int] = []


def create_app():
    CALLS.append(1)

    def app(environ, start_response):
        body = b"made by the factory, %d call(s)" % len(CALLS)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app
