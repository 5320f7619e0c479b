"""A FastAPI chat: a message received by one worker reaches the clients of every worker.

Each client joins the room it names; what it sends is broadcast to that room
by the reactor (one IPC frame, fan-out there), whichever worker holds the
other members.  No Redis on one machine; ``--broadcast-url`` for several.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

import swserve

app = FastAPI()


@app.websocket("/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    me = websocket.scope["extensions"]["swserve.session"]["id"]
    await swserve.ajoin(me, room)
    await websocket.send_json({"you": me, "worker": os.getpid()})
    try:
        while True:
            text = await websocket.receive_text()
            # to everyone in the room but the sender, on every worker (and instance)
            await swserve.abroadcast(room, f"{me}: {text}", exclude=me)
    except WebSocketDisconnect:
        pass  # swserve takes the session out of its rooms


@app.post("/rooms/{room}/announce")
async def announce(room: str, text: str) -> dict[str, int]:
    """A plain HTTP request, on any worker, speaks to the room."""
    return {"delivered": await swserve.abroadcast(room, f"announcement: {text}")}


@app.get("/")
async def index() -> dict[str, int]:
    return {"pid": os.getpid()}
