"""Helpers shared by the Flask, Django and FastAPI test apps (same routes, same answers)."""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

UNICODE = "héllo wörld ✓ 日本"


def stream_chunk(i: int) -> bytes:
    return f"{i:05d}".encode() * 200 + b"\n"


def say(line: str) -> None:
    """One write per line: the workers share stdout, and a short write is atomic."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def big_body(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def data_file(size: int, seed: int) -> Path:
    """A file holding big_body(size, seed), in $FRAMEWORK_APP_FILES (set by the tests)."""
    where = Path(os.environ.get("FRAMEWORK_APP_FILES") or tempfile.gettempdir())
    target = where / f"swserve-fw-{size}-{seed}.bin"
    if not target.exists():
        partial = where / f"{target.name}.{os.getpid()}.part"
        partial.write_bytes(big_body(size, seed))
        partial.replace(target)
    return target
