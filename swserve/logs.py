"""Logger names and the default logging set-up shared by every process.

``swserve.error`` is the error log (start-up, worker life cycle, app
exceptions); ``swserve.access`` is reserved for the access log.
"""

from __future__ import annotations

import logging
import sys

ERROR_LOGGER = "swserve.error"
ACCESS_LOGGER = "swserve.access"

_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"


def configure(level: str) -> None:
    """Log to stderr at ``level``; idempotent, so forked children may call it again."""
    root = logging.getLogger("swserve")
    root.setLevel(level.upper())
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S %z"))
        root.addHandler(handler)
    root.propagate = False
    # the access log is switched by --access-log, not by --log-level, and its lines
    # are the formatted line alone, as in gunicorn
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO)
    if not access.handlers:
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(plain)
    access.propagate = False
