"""Server push under test: plain ASGI, WebSocket sessions and HTTP endpoints that push.

``/ws?groups=a,b``: a session that joins the groups, then sends
``{"id": …, "pid": …}``; it echoes nothing.  HTTP, each answered as JSON:
``/push?to=ID&msg=M`` (awaitable form), ``/push-sync?…`` (the blocking form, in a
thread), ``/wsgi/push?…`` (a WSGI app mounted in this ASGI app), ``/broadcast?
group=G&msg=M&exclude=ID``, ``/join``, ``/leave``, ``/is_open``, ``/close``,
``/block?pid=P&s=S`` (holds this worker's whole loop, only in worker ``pid``),
``/wait?pid=P&s=S`` (a long request that awaits), ``/pid``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
import warnings
from typing import Any

import swserve

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.middleware.wsgi import WSGIMiddleware


def wsgi_push(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    ok = swserve.push(q["to"][0], q["msg"][0]).result(10)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"ok": ok, "pid": os.getpid()}).encode()]


wsgi = WSGIMiddleware(wsgi_push)


def push_from_task(to: str, msg: str) -> bool:
    """Run in a task worker, which the manager forked: not a worker, nor its child."""
    return bool(swserve.push(to, msg).result(10))


async def answer(send: Any, body: Any, status: int = 200) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def session(scope: Any, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    sid = scope["extensions"]["swserve.session"]["id"]
    q = urllib.parse.parse_qs(scope["query_string"].decode())
    for group in q.get("groups", [""])[0].split(","):
        if group:
            assert await swserve.ajoin(sid, group)
    await send({"type": "websocket.send", "text": json.dumps({"id": sid, "pid": os.getpid()})})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await session(scope, receive, send)
        return
    path = scope["path"]
    q = {k: v[0] for k, v in urllib.parse.parse_qs(scope["query_string"].decode()).items()}
    pid = os.getpid()
    if path.startswith("/wsgi/"):
        await wsgi(scope, receive, send)
    elif path == "/push":
        await answer(send, {"ok": await swserve.apush(q["to"], q["msg"]), "pid": pid})
    elif path == "/push-bytes":
        await answer(send, {"ok": await swserve.push(q["to"], q["msg"].encode()), "pid": pid})
    elif path == "/push-sync":
        ok = await asyncio.to_thread(lambda: swserve.push(q["to"], q["msg"]).result(10))
        await answer(send, {"ok": ok, "pid": pid})
    elif path == "/push-task":  # a task worker pushes (--task-workers)
        ok = await swserve.task(push_from_task, q["to"], q["msg"])
        await answer(send, {"ok": ok, "pid": pid})
    elif path == "/push-child":  # a process the worker starts (a user process)
        code = "import sys, swserve; print(swserve.push(sys.argv[1], sys.argv[2]).result(10))"
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, q["to"], q["msg"], stdout=asyncio.subprocess.PIPE
        )
        out, _ = await child.communicate()
        await answer(send, {"ok": out.strip() == b"True", "pid": child.pid})
    elif path == "/push-many":
        for i in range(int(q["n"])):
            swserve.push(q["to"], f"{q['msg']}{i}")  # fire and forget
        await answer(send, {"ok": await swserve.is_open(q["to"]), "pid": pid})
    elif path == "/broadcast":
        count = await swserve.abroadcast(q["group"], q["msg"], exclude=q.get("exclude"))
        await answer(send, {"count": count, "pid": pid})
    elif path == "/broadcast-big":
        total = 0
        for i in range(int(q["n"])):
            data = str(i).encode().ljust(int(q["size"]), b".")
            total += await swserve.abroadcast(q["group"], data)
        await answer(send, {"count": total, "pid": pid})
    elif path == "/join":
        await answer(send, {"ok": await swserve.ajoin(q["sid"], q["group"])})
    elif path == "/leave":
        await answer(send, {"ok": await swserve.aleave(q["sid"], q["group"])})
    elif path == "/is_open":
        await answer(send, {"ok": await swserve.is_open(q["sid"])})
    elif path == "/close":
        ok = await swserve.aclose(q["sid"], int(q.get("code", "1000")), q.get("reason", ""))
        await answer(send, {"ok": ok})
    elif path in ("/block", "/wait"):
        if int(q["pid"]) != pid:
            await answer(send, {"pid": pid}, 409)  # another worker: the test tries again
            return
        with open(q["mark"], "w") as mark:  # the test waits for this file
            mark.write(str(pid))
        if path == "/block":
            time.sleep(float(q["s"]))  # the whole loop is held: this worker does nothing else
        else:
            await asyncio.sleep(float(q["s"]))
        await answer(send, {"pid": pid})
    else:
        await answer(send, {"pid": pid})
