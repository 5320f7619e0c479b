"""A typical small FastAPI endpoint: Starlette routing, dependency resolution and JSON."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def index() -> dict[str, str]:
    return {"message": "Hello, world!"}
