"""A user process (``--process jobs:consume``): consume the job queue in ``./queue``.

The web app drops each job as a JSON file in ``queue/``; this process takes
them in order, has a task worker do the work (``swserve.task_sync``), and
writes the result to ``done/``.  A directory stands in for the queue your
app would use (Redis, SQS, a database table); swserve supervises the consumer:
it is restarted if it crashes, replaced on SIGHUP, stopped with the server.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from work import word_count

import swserve

QUEUE = Path("queue")
DONE = Path("done")


def consume() -> None:
    QUEUE.mkdir(exist_ok=True)
    DONE.mkdir(exist_ok=True)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True  # finish the job in hand, then exit

    signal.signal(signal.SIGTERM, stop)
    print(f"consumer {os.getpid()} is waiting for jobs in {QUEUE}/", flush=True)
    while not stopping:
        jobs = sorted(QUEUE.glob("*.json"))
        if not jobs:
            time.sleep(0.1)
            continue
        for path in jobs:
            job = json.loads(path.read_text())
            result = swserve.task_sync(word_count, job["text"], timeout=30)
            result.update(id=job["id"], consumer=os.getpid())
            (DONE / path.name).write_text(json.dumps(result))
            path.unlink()
