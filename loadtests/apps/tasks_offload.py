"""Offload a trivial function from an ASGI app: to swserve's task workers, or to a process pool.

``GET /bench?via=swserve|executor&tasks=N&concurrency=C`` runs N calls of :func:`trivial`,
C at a time, from this worker's event loop, and answers JSON: the wall time, and the round
trip of every call in microseconds (from the call to its result back on the loop).
``via=swserve`` is ``await swserve.task(trivial, i)``; ``via=executor`` is
``await loop.run_in_executor(pool, trivial, i)`` with a ``ProcessPoolExecutor`` of
``$POOL_WORKERS`` (2) processes, created on first use in this worker (what an app under
uvicorn does today).  ``GET /`` answers ``ok`` (the harness's readiness probe).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import parse_qs

Send = Callable[[dict[str, Any]], Awaitable[None]]


def trivial(n: int) -> int:
    return n + 1


_pool: ProcessPoolExecutor | None = None


def _executor_call(n: int) -> Awaitable[int]:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(int(os.environ.get("POOL_WORKERS", "2")))
    return asyncio.get_running_loop().run_in_executor(_pool, trivial, n)


def _swserve_call(n: int) -> Awaitable[int]:
    import swserve

    return swserve.task(trivial, n)


async def _bench(via: str, tasks: int, concurrency: int) -> dict[str, Any]:
    call = _swserve_call if via == "swserve" else _executor_call
    round_trips: list[int] = []
    counter = iter(range(tasks))

    async def lane() -> None:
        for n in counter:
            start = time.perf_counter_ns()
            assert await call(n) == n + 1
            round_trips.append((time.perf_counter_ns() - start) // 1000)

    await call(-1)  # warm: the link or the pool exists before the clock starts
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return {"wall_s": time.perf_counter() - started, "round_trips_us": round_trips}


async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
    if scope["type"] != "http":
        return
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    body = b"ok"
    if scope["path"] == "/bench":
        result = await _bench(
            query.get("via", "swserve"),
            int(query.get("tasks", "2000")),
            int(query.get("concurrency", "8")),
        )
        body = json.dumps(result).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
