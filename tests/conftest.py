"""Shared test settings: hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``.

``ci`` (the default): derandomized, so a CI run is reproducible, 100 examples.
``dev``: 500 examples, a fresh random seed each run.
``nightly``: 5,000 examples and a fresh random seed each run; run it with
``python3 -m loadtests.hypothesis_nightly`` (loadtests/README.md).

Every profile prints the reproduction blob of a failing example
(``@reproduce_failure``), and pytest's hypothesis plugin prints the seed a
randomized run used (``--hypothesis-seed=N`` reruns it).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=500, print_blob=True)
settings.register_profile(
    "nightly",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_NIGHTLY_EXAMPLES", "5000")),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
