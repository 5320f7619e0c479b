"""Run the property-based tests with many more examples and a fresh random seed.

``python3 -m loadtests.hypothesis_nightly`` (from the repository root, in the
project's venv) runs every hypothesis test under ``tests/unit`` with the
``nightly`` profile of ``tests/conftest.py`` (5,000 examples each, not
derandomized) and a random seed, which it prints first; a failure prints the
example's ``@reproduce_failure`` blob too.  Rerun a failure with the same seed:
``python3 -m loadtests.hypothesis_nightly --seed N``.  Extra arguments go to
pytest (``-k parser``, ``-x``).  It takes tens of minutes: a nightly job, not CI.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the modules that use hypothesis (grep -l "from hypothesis" tests/unit -r)
MODULES = [
    "tests/unit/protocol/test_parser_fuzz.py",
    "tests/unit/protocol/test_parser_corpus.py",
    "tests/unit/ipc/test_codec.py",
    "tests/unit/ipc/test_framing.py",
    "tests/unit/manager/test_policy.py",
    "tests/unit/reactor/test_dispatcher.py",
    "tests/unit/reactor/test_http_date.py",
    "tests/unit/metrics/test_requests.py",
    "tests/unit/test_proxy.py",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="rerun with this seed (default: a random one)")
    parser.add_argument("--examples", type=int, help="override the profile's 5,000 examples")
    args, rest = parser.parse_known_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"hypothesis nightly: seed {seed} (rerun: --seed {seed})", flush=True)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "nightly"}
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
        f"--hypothesis-seed={seed}", "--hypothesis-show-statistics",
        "-o", "timeout=0",  # thousands of examples: no per-test time limit
        *[m for m in MODULES if (ROOT / m).exists()], *rest,
    ]  # fmt: skip
    if args.examples:
        env["HYPOTHESIS_NIGHTLY_EXAMPLES"] = str(args.examples)
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
