"""A hooks module that is slow to import (the master imports it before anything forks).

It writes SLOW_HOOKS_MARKER when its import begins, then sleeps SLOW_HOOKS_DELAY.
"""

from __future__ import annotations

import os
import time

with open(os.environ["SLOW_HOOKS_MARKER"], "w") as marker:
    marker.write(str(os.getpid()))
time.sleep(float(os.environ.get("SLOW_HOOKS_DELAY", "2")))
