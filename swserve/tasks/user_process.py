"""A user process (``--process module:callable``): import the callable, run it, exit.

Forked by the manager once every worker is ready.  It ignores the signals
that are the master's (SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU:
Ctrl-C reaches the whole process group), SIGTERM ends it unless the callable
installs its own handler, and the kernel sends it SIGTERM if the manager
dies (``PR_SET_PDEATHSIG``).  It may call the task API, and is started again
when it returns or crashes (``manager/user_processes.py`` decides when).  An
``async def`` callable runs on a fresh event loop.  The callable is imported
here, after the fork, so a reload starts the code on disk now.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import sys

from swserve.apps.loader import load
from swserve.config import Config
from swserve.errors import EXIT_APP_LOAD, EXIT_ERROR, EXIT_OK, AppLoadError
from swserve.process.shared import die_with_parent, ignore_master_signals
from swserve.process.title import set_title

log = logging.getLogger("swserve.error")


def run(config: Config, index: int, spec: str, manager: int) -> int:
    """Run user process ``index`` (1-based) once; return its exit code."""
    ignore_master_signals()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if not die_with_parent(manager):  # a manager killed outright takes us with it
        return EXIT_OK
    set_title(f"swserve: process {index} {spec}")
    sys.stdout.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    try:
        fn = load(spec, app_dir=config.app_dir)
    except AppLoadError as exc:
        log.error("user process %d: %s", index, str(exc).replace("could not import", "cannot run"))
        return EXIT_APP_LOAD
    try:
        result = fn()
        if inspect.isawaitable(result):
            from swserve.process.loop import new_event_loop

            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(_wait(result))
            finally:
                loop.close()
    except Exception:
        log.exception("user process %d (%s) raised", index, spec)
        return EXIT_ERROR
    return EXIT_OK


async def _wait(awaitable: object) -> None:
    await awaitable  # type: ignore[misc]
