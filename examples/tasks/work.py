"""The functions that task workers run: module-level, so they travel by name."""

from __future__ import annotations

import math
import os


def count_primes(limit: int) -> dict[str, int]:
    """CPU-bound on purpose: count the primes below ``limit`` by trial division."""
    count = 0
    for n in range(2, limit):
        if all(n % d for d in range(2, math.isqrt(n) + 1)):
            count += 1
    return {"limit": limit, "primes": count, "task_worker": os.getpid()}


def word_count(text: str) -> dict[str, int]:
    """A job's work: count the words (run by the queue consumer through a task)."""
    return {"words": len(text.split()), "task_worker": os.getpid()}
