"""Micro-benchmark: the CPU cost of forking and booting one worker, as the manager does.

    python loadtests/micro/worker_boot.py [N]

Forks N children from a process that has preloaded swserve's worker modules
(exactly what the manager does, then gc.freeze()) and reports the CPU time
per fork spent in the child and in the parent, for a bare fork+exit and for
a fork that boots a worker (app import, WSGI adapter, atexit handlers).
This is the floor under every recycle and reload: see docs/benchmarks.md.
"""

from __future__ import annotations

import atexit
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path

APPS = Path(__file__).resolve().parents[1] / "apps"


def measure(label: str, child: Callable[[], None], n: int) -> None:
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    child_ms = (
        (children1.ru_utime - children0.ru_utime + children1.ru_stime - children0.ru_stime)
        / n
        * 1e3
    )
    parent_ms = (self1.ru_utime - self0.ru_utime + self1.ru_stime - self0.ru_stime) / n * 1e3
    faults = (children1.ru_minflt - children0.ru_minflt) / n
    print(
        f"{label:10s} child {child_ms:5.2f} ms  parent {parent_ms:5.2f} ms  page faults {faults:5.0f}"
    )


def boot() -> None:
    from swserve.apps.loader import detect_interface, load
    from swserve.apps.wsgi import WSGIAdapter
    from swserve.process.title import set_title

    set_title("swserve: worker 1")
    app = load("hello_wsgi:app", app_dir=str(APPS))
    detect_interface(app)
    WSGIAdapter(app, multithread=False, multiprocess=True)
    atexit._run_exitfuncs()


def main() -> None:
    from swserve.config import Config
    from swserve.manager.main import _preload_worker_modules

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    _preload_worker_modules(Config())
    measure("fork+exit", lambda: None, n)
    measure("fork+boot", boot, n)
    print(f"parent max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
