"""``python3 -m loadtests.run`` (or ``python3 loadtests/run``): the benchmark runner."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a directory: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtests.run.cli import main

sys.exit(main())
