"""A small Flask API: a couple of routes that speak JSON.

Run it under swserve (see README.md)::

    swserve app:app --workers 2
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify, request

app = Flask(__name__)

# A read-only catalogue: every worker process has its own copy, so nothing here
# may change at run time (state that workers share belongs in a database).
BOOKS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "title": "The Pragmatic Programmer", "year": 1999},
    2: {"id": 2, "title": "Structure and Interpretation of Computer Programs", "year": 1985},
}


@app.get("/")
def index() -> Any:
    """Which process answered: run with several workers and watch the pid change."""
    return jsonify(service="flask-example", pid=os.getpid())


@app.get("/books")
def list_books() -> Any:
    return jsonify(books=list(BOOKS.values()))


@app.get("/books/<int:book_id>")
def get_book(book_id: int) -> Any:
    book = BOOKS.get(book_id)
    if book is None:
        abort(404, description=f"no book {book_id}")
    return jsonify(book)


@app.post("/echo")
def echo() -> Any:
    """Send back the JSON body, with the client address swserve saw."""
    payload = request.get_json(silent=True)
    if payload is None:
        abort(400, description="send a JSON body with Content-Type: application/json")
    return jsonify(received=payload, client=request.remote_addr), 201


@app.errorhandler(400)
@app.errorhandler(404)
def json_error(error: Any) -> Any:
    """Errors as JSON too, so API clients never have to parse HTML."""
    return jsonify(error=error.description), error.code
