"""FastAPI offloading work to swserve's task workers, with a queue consumer beside it.

Run it under swserve (see README.md)::

    swserve main:app --workers 2 --task-workers 2 --process jobs:consume
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from work import count_primes

import swserve

app = FastAPI(title="swserve task workers example")
QUEUE = Path("queue")
DONE = Path("done")


class Job(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)


@app.get("/")
async def index() -> dict[str, object]:
    return {"service": "tasks-example", "pid": os.getpid(), "time": time.time()}


@app.get("/primes/{limit}")
async def primes(limit: int) -> dict[str, int]:
    """CPU-bound: a task worker counts, this worker's event loop serves on meanwhile."""
    if not 2 <= limit <= 2_000_000:
        raise HTTPException(422, "limit must be between 2 and 2000000")
    return await swserve.task(count_primes, limit)


@app.post("/jobs", status_code=202)
def submit(job: Job) -> dict[str, str]:
    """Queue a job for the consumer (a user process) and answer at once.

    A plain def: FastAPI runs it in its thread pool, so the file I/O never blocks the loop.
    """
    job_id = uuid.uuid4().hex
    QUEUE.mkdir(exist_ok=True)
    tmp = QUEUE / f".{job_id}.tmp"
    tmp.write_text(json.dumps({"id": job_id, "text": job.text}))
    tmp.rename(QUEUE / f"{time.time_ns()}-{job_id}.json")  # whole, or not at all
    return {"id": job_id}


@app.get("/jobs/{job_id}")
def result(job_id: str) -> dict[str, object]:
    found = list(DONE.glob(f"*-{job_id}.json")) if DONE.exists() else []
    if not found:
        return {"id": job_id, "status": "queued"}
    return {"status": "done", **json.loads(found[0].read_text())}
