"""A FastAPI app for the framework tests (served over ASGI).

The routes are those described in flask_app.py, plus ``/lifespan``, which
reports whether the lifespan startup ran in this worker.  Lifespan startup
and shutdown each print a line to stdout so the tests can see them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Cookie, FastAPI, Form, Response, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from fw_common import UNICODE, big_body, data_file, say, stream_chunk


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.started = True
    say(f"fastapi lifespan startup pid={os.getpid()}")
    yield
    say(f"fastapi lifespan shutdown pid={os.getpid()}")


app = FastAPI(lifespan=lifespan)


@app.get("/json")
async def json_view(q: str | None = None) -> dict[str, object]:
    return {
        "framework": "fastapi",
        "message": "hello",
        "unicode": UNICODE,
        "numbers": [1, 2, 3],
        "q": q,
    }


@app.post("/form")
async def form_view(
    name: Annotated[str | None, Form()] = None, lang: Annotated[str | None, Form()] = None
) -> dict[str, str | None]:
    return {"name": name, "lang": lang}


@app.post("/upload")
async def upload_view(
    file: UploadFile, note: Annotated[str | None, Form()] = None
) -> dict[str, object]:
    digest = hashlib.sha256()
    size = 0
    while block := await file.read(65536):
        digest.update(block)
        size += len(block)
    return {"filename": file.filename, "size": size, "sha256": digest.hexdigest(), "note": note}


@app.get("/stream")
async def stream_view(n: int = 10, tag: str | None = None) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(n):
            yield stream_chunk(i)
        if tag:
            say(f"stream finished tag={tag}")

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/cookie")
async def cookie_view(response: Response, value: str = "anonymous") -> dict[str, str]:
    response.set_cookie("session", value, httponly=True)
    response.set_cookie("theme", "dark")
    return {"set": value}


@app.get("/big")
async def big_view(size: int, seed: int) -> Response:
    return Response(big_body(size, seed), media_type="application/octet-stream")


@app.get("/download")
async def download_view(size: int, seed: int) -> FileResponse:
    return FileResponse(
        data_file(size, seed), media_type="application/octet-stream", filename="data.bin"
    )


@app.get("/whoami")
async def whoami_view(
    session: Annotated[str | None, Cookie()] = None,
    theme: Annotated[str | None, Cookie()] = None,
) -> dict[str, str | None]:
    return {"session": session, "theme": theme}


@app.get("/redirect")
async def redirect_view() -> RedirectResponse:
    return RedirectResponse("/json", status_code=302)


@app.get("/lifespan")
async def lifespan_view() -> dict[str, object]:
    return {"started": getattr(app.state, "started", False), "pid": os.getpid()}
