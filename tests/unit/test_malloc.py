"""swserve/process/malloc.py: large bodies stop costing a page fault per 4 KiB.

Each case runs in a fresh interpreter: malloc settings are process-wide and
cannot be undone.  The loop is the reactor's pattern for a 1 MiB body: grow a
bytearray from 64 KiB reads, then copy it into a frame.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LOOP = """
import os, resource, sys
import swserve.process.malloc
if sys.argv[1] == "tune":
    assert swserve.process.malloc.tune(os.environ)
chunk = b"x" * 65536
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    body = bytearray()
    for _ in range(16):
        body += chunk
    frame = bytes(body) + b"!"
    del body, frame
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", LOOP, mode],
        env={"PATH": "/usr/bin:/bin"},  # no MALLOC_* variable from the caller
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.timeout(60)
def test_tuned_malloc_reuses_its_heap_for_large_buffers() -> None:
    # glibc's defaults hand the memory back and fault it in again: ~570 faults per
    # round here (256 pages per MiB, twice); tuned, the heap stays mapped (~15)
    tuned, untuned = faults("tune"), faults("default")
    assert tuned * 5 < untuned, (tuned, untuned)


@pytest.mark.parametrize(
    "name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"]
)
def test_a_users_malloc_variable_is_left_alone(name: str) -> None:
    from swserve.process import malloc

    assert malloc.tune({name: "131072"}) is False
