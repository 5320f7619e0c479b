"""``--cpu-affinity``: pin worker i and reactor i to one CPU core, as Swoole's open_cpu_affinity.

Swoole pins reactor thread i and worker i to core ``i % cores`` with 0-based
ids.  swserve's worker ids (slots) start at 1, so slot i takes the
``(i - 1)``-th core: worker 1 and the first reactor share the first core,
worker 2 takes the second, and so on, wrapping around.

"Cores" are the CPUs this process may run on (``sched_getaffinity``), in
order, not the machine's core numbers: in a container limited to CPUs 4-7,
worker 1 goes to CPU 4.  Workers read that set from the manager, which is
never pinned, so a replacement worker sees the same set as the first one.
"""

from __future__ import annotations

import os
from collections.abc import Collection


def core_for(slot: int, cpus: Collection[int]) -> int:
    """The CPU for 1-based ``slot`` among the usable ``cpus``."""
    ordered = sorted(cpus)
    return ordered[(slot - 1) % len(ordered)]


def pin(slot: int) -> int:
    """Pin the calling process to the CPU of ``slot``; return that CPU."""
    core = core_for(slot, os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core
