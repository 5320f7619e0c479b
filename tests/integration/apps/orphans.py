"""/orphan leaves a process behind: a child that exits at once, and its own
child (now an orphan) that prints "orphan: exiting" and exits a moment later.
With swserve as PID 1 the orphan is re-parented to the master, which must reap it."""

from __future__ import annotations

import os
import sys
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/orphan":
        child = os.fork()
        if child == 0:
            if os.fork() == 0:
                time.sleep(0.3)  # outlive the parent: the orphan's whole point
                print("orphan: exiting", flush=True)
                os._exit(0)
            os._exit(0)
        os.waitpid(child, 0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    sys.stdout.flush()
    return [b"ok"]
