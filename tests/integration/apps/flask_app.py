"""A Flask app for the framework tests (served over WSGI).

The routes and their answers are the same in flask_app, django_app and
fastapi_app, so test_frameworks.py can run one set of tests against all three:

  GET  /json?q=…            → {"framework", "message", "unicode", "numbers", "q"}
  POST /form (urlencoded)   → {"name", "lang"} echoed
  POST /upload (multipart)  → {"filename", "size", "sha256", "note"} of field "file"
  GET  /stream?n=N&tag=T    → N chunks of stream_chunk(i), no Content-Length; with a tag,
                              prints "stream finished tag=T" once the last chunk is handed over
  GET  /big?size=N&seed=S   → N bytes of big_body(N, S), not streamed (Content-Length)
  GET  /download?size=N&seed=S → a file of big_body(N, S) as an attachment "data.bin"
                              (Flask and Django send it through wsgi.file_wrapper)
  GET  /cookie?value=V      → sets the cookies session=V and theme=dark (two Set-Cookie)
  GET  /whoami              → {"session", "theme"}: the cookies or null
  GET  /redirect            → 302 to /json

flask_app also prints "flask_app atexit pid=N" from an atexit handler.
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Iterator

from flask import Flask, jsonify, redirect, request, send_file, stream_with_context
from fw_common import UNICODE, big_body, data_file, say, stream_chunk

app = Flask(__name__)


# An exiting worker should run what the app registered with atexit (gunicorn's
# and uvicorn's workers do): flushing logs, closing pools, removing temp files.
atexit.register(say, f"flask_app atexit pid={os.getpid()}")


@app.get("/json")
def json_view():
    return jsonify(
        framework="flask",
        message="hello",
        unicode=UNICODE,
        numbers=[1, 2, 3],
        q=request.args.get("q"),
    )


@app.post("/form")
def form_view():
    return jsonify(name=request.form.get("name"), lang=request.form.get("lang"))


@app.post("/upload")
def upload_view():
    upload = request.files["file"]
    digest = hashlib.sha256()
    size = 0
    while block := upload.stream.read(65536):
        digest.update(block)
        size += len(block)
    return jsonify(
        filename=upload.filename,
        size=size,
        sha256=digest.hexdigest(),
        note=request.form.get("note"),
    )


@app.get("/stream")
def stream_view():
    count = int(request.args.get("n", "10"))
    tag = request.args.get("tag")

    def generate() -> Iterator[bytes]:
        for i in range(count):
            yield stream_chunk(i)
        if tag:
            say(f"stream finished tag={tag}")

    return app.response_class(stream_with_context(generate()), mimetype="text/plain")


@app.get("/big")
def big_view():
    body = big_body(int(request.args["size"]), int(request.args["seed"]))
    return app.response_class(body, mimetype="application/octet-stream")


@app.get("/download")
def download_view():
    path = data_file(int(request.args["size"]), int(request.args["seed"]))
    return send_file(
        path, mimetype="application/octet-stream", as_attachment=True, download_name="data.bin"
    )


@app.get("/cookie")
def cookie_view():
    value = request.args.get("value", "anonymous")
    response = jsonify(set=value)
    response.set_cookie("session", value, httponly=True)
    response.set_cookie("theme", "dark")
    return response


@app.get("/whoami")
def whoami_view():
    return jsonify(session=request.cookies.get("session"), theme=request.cookies.get("theme"))


@app.get("/redirect")
def redirect_view():
    return redirect("/json", code=302)
