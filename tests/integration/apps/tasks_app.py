"""Task functions, an ASGI and a WSGI app that run them, and user processes.

``GET /call?fn=NAME&args=JSON[&timeout=S]`` runs ``NAME(*args)`` as a task and answers
``{"ok": result}`` or ``{"error": type, "message": str, "cause": type, "remote": text}``.
``GET /nowait?fn=NAME&args=JSON`` submits it fire-and-forget; ``GET /fast`` answers at once.
User processes write to files in ``$TASKS_DIR``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import swserve

# -- tasks ---------------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    return a + b


def whoami() -> int:
    return os.getpid()


def boom(message: str) -> None:
    raise ValueError(message)


class Odd(Exception):
    """Its __init__ takes two arguments: it cannot be rebuilt from its args by pickle."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"odd {a}+{b}")


def odd() -> None:
    raise Odd(1, 2)


def spin(seconds: float) -> float:
    """CPU-bound: burn the CPU for ``seconds``; return when it finished (time.time)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(1000))
    return time.time()


def nap(seconds: float, marker: str = "") -> int:
    """Write our pid to ``marker`` (if given), sleep, then touch ``marker + '.done'``."""
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    if marker:
        Path(marker + ".done").write_text(str(os.getpid()))
    return os.getpid()


def nested(a: int) -> int:
    """A task that runs another task (from a task worker, blocking)."""
    return swserve.task_sync(add, a, 1, timeout=20) * 10


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


def echo(value: Any) -> Any:
    return value


FUNCTIONS = {f.__name__: f for f in (add, whoami, boom, odd, spin, nap, nested, async_add, echo)}


def _describe(exc: BaseException) -> dict[str, Any]:
    cause = exc.__cause__
    return {
        "error": type(exc).__name__,
        "message": str(exc),
        "cause": type(cause).__name__ if cause is not None else None,
        "remote": str(cause) if cause is not None else "",
    }


def _query(raw: str) -> tuple[str, list[Any], float | None]:
    query = {k: v[0] for k, v in parse_qs(raw).items()}
    timeout = float(query["timeout"]) if "timeout" in query else None
    return query.get("fn", "add"), json.loads(query.get("args", "[]")), timeout


# -- the ASGI app ---------------------------------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    name, args, timeout = _query(scope["query_string"].decode())
    out: Any
    if path == "/fast":
        out = {"ok": time.time()}
    elif path == "/nowait":
        swserve.task_nowait(FUNCTIONS[name], *args)
        out = {"ok": None}
    elif path == "/lambda":
        try:
            await swserve.task(lambda: 1)
            out = {"ok": "no error"}
        except TypeError as exc:
            out = _describe(exc)
    else:
        try:
            call = swserve.task(FUNCTIONS[name], *args)
            result = await (asyncio.wait_for(call, timeout) if timeout else call)
            out = {"ok": result}
        except Exception as exc:
            out = _describe(exc)
    body = json.dumps(out).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the WSGI app: the same, blocking ----------------------------------------------------------


def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    name, args, timeout = _query(environ.get("QUERY_STRING", ""))
    out: Any
    try:
        out = {"ok": swserve.task_sync(FUNCTIONS[name], *args, timeout=timeout)}
    except Exception as exc:
        out = _describe(exc)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]


# -- user processes ---------------------------------------------------------------------------


def _log(name: str, line: str) -> None:
    with open(Path(os.environ["TASKS_DIR"]) / name, "a") as f:
        f.write(line + "\n")


def crasher() -> None:
    """Exits at once, every time."""
    _log("crasher.log", f"{time.monotonic()} {os.getpid()}")
    sys.exit(1)


def crash_twice() -> None:
    """Crashes on its first two starts, then stays up, running a task every 0.1 s."""
    log = Path(os.environ["TASKS_DIR"]) / "starts.log"
    starts = len(log.read_text().splitlines()) if log.exists() else 0
    _log("starts.log", f"{time.monotonic()} {os.getpid()}")
    if starts < 2:
        raise RuntimeError(f"crash number {starts + 1}")
    n = 0
    while True:
        n += 1
        result = swserve.task_sync(add, n, n, timeout=20)
        (Path(os.environ["TASKS_DIR"]) / "consumer.txt").write_text(f"{os.getpid()} {result}")
        time.sleep(0.1)


def graceful() -> None:
    """On SIGTERM, finish what it was doing (0.5 s) and say so."""
    import signal

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
    _log("graceful.log", f"up {os.getpid()}")
    while not stopping:
        time.sleep(0.02)
    time.sleep(0.5)
    _log("graceful.log", f"done {os.getpid()}")


async def async_consumer() -> None:
    """An async user process: awaits tasks on its own event loop."""
    result = await swserve.task(add, 20, 22)
    _log("async.log", f"{os.getpid()} {result}")
    await asyncio.sleep(3600)
