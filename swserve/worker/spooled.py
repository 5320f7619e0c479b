"""Open a request body the reactor spooled to disk (see reactor/spool.py)."""

from __future__ import annotations

import os
from typing import BinaryIO


def open_spooled(path: bytes) -> BinaryIO:
    """Open the file and unlink it at once: the open file keeps the data alive.

    Resource handling: the caller closes the file after the request.
    """
    name = os.fsdecode(path)
    f = open(name, "rb")  # noqa: SIM115 - closed by the adapter after the request
    os.unlink(name)
    return f
