"""WebSocket endpoints as FastAPI and Starlette users write them.

- ``/fastapi/echo``: FastAPI, accept with the first offered subprotocol, echo text
  and bytes until WebSocketDisconnect;
- ``/fastapi/deny``: close before accepting (policy violation: the client gets 403);
- ``/fastapi/json``: receive_json / send_json, then close with 4000;
- ``/starlette/endpoint``: a Starlette ``WebSocketEndpoint`` class that echoes in upper
  case and records each disconnect code;
- ``/disconnects`` (HTTP): the codes recorded.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.endpoints import WebSocketEndpoint

app = FastAPI()
CODES: list[int] = []


@app.websocket("/fastapi/echo")
async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=offered[0] if offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                CODES.append(message["code"])
                return
            if message.get("text") is not None:
                await websocket.send_text("fastapi:" + message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        CODES.append(exc.code)


@app.websocket("/fastapi/deny")
async def deny(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


@app.websocket("/fastapi/json")
async def json_route(websocket: WebSocket) -> None:
    await websocket.accept()
    data = await websocket.receive_json()
    await websocket.send_json(
        {"got": data, "session": websocket.scope["extensions"]["swserve.session"]["id"]}
    )
    await websocket.close(code=4000, reason="done")


class Upper(WebSocketEndpoint):
    encoding = "text"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(str(data).upper())

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        CODES.append(close_code)


# Starlette takes an endpoint class here, which FastAPI's annotation does not say
app.router.add_websocket_route("/starlette/endpoint", Upper)  # type: ignore[arg-type]


@app.get("/disconnects")
async def disconnects() -> list[int]:
    return CODES
