"""Chaos, short: kill -9 workers (at each moment in turn) and the manager under keep-alive load.

The long run is ``python3 -m loadtests.chaos`` (loadtests/README.md).  Here a fixed
seed, two servers, a few rounds: only what the killed process held fails, a fresh
connection is answered within 1 s, nothing hangs, nothing is left behind.
"""

from __future__ import annotations

import argparse

import pytest

from loadtests import chaos

pytestmark = pytest.mark.timeout(60)


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "servers": "swserve", "target": "worker", "rounds": 5, "workers": 2, "clients": 6,
        "gap": 0.4, "seed": 17, "all_moments": True, "json": None, "mode": "process",
    }  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)


def check(result: dict[str, object]) -> None:
    assert result["passed"], chaos.summary([result]) + f"\n{result}"


@pytest.mark.parametrize("mode", ["process", "base"])
def test_worker_kills_fail_only_what_the_worker_held(mode: str) -> None:
    result = chaos.run_server("swserve", args(mode=mode))
    check(result)
    kills = result["kills"]
    assert isinstance(kills, list)
    assert len(kills) == 5
    assert result["requests"] > 100  # the load ran


def test_a_killed_manager_finishes_what_is_in_flight_and_exits_1() -> None:
    result = chaos.run_server("swserve", args(target="manager", rounds=1))
    check(result)
    (kill,) = result["kills"]
    assert "exited 1" in kill["note"]
    assert not kill["unexplained"]  # no request in flight at the kill failed
    assert result["left_behind"] == []
