"""A typical small Flask endpoint: routing, a request context and JSON serialisation."""

from __future__ import annotations

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/")
def index() -> Response:
    return jsonify({"message": "Hello, world!", "n": 1})
