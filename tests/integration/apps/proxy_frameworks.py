"""Flask and FastAPI apps that build an absolute URL and name the client.

``GET /where`` → {"url": the framework's absolute URL for this route,
"client": the client address it sees}.  Used to show that proxy headers
and --root-path reach real frameworks the way they expect them.
"""

from __future__ import annotations

import flask
from fastapi import FastAPI, Request

flask_app = flask.Flask(__name__)


@flask_app.get("/where")
def flask_where() -> flask.Response:
    return flask.jsonify(
        url=flask.url_for("flask_where", _external=True), client=flask.request.remote_addr
    )


fastapi_app = FastAPI()


@fastapi_app.get("/where")
async def fastapi_where(request: Request) -> dict[str, str | None]:
    client = request.client.host if request.client else None
    return {"url": str(request.url_for("fastapi_where")), "client": client}
