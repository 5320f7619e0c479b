"""What one run was asked for (durations, pinning, rates): its Settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtests.run.procs import Pinning
from loadtests.run.scenarios import (
    BASELINE,
    CHURN,
    CLEAN,
    HELD,
    HUP_INTERVAL_S,
    IDLE,
    MAX_REQUESTS,
    OPENLOOP,
    OPENLOOP_RATES,
    OPENLOOP_SEED,
    RECYCLE,
    RELOAD,
    SLOWLORIS,
    WITH,
    WITHOUT,
    Scenario,
    Suite,
)

# ---------------------------------------------------------------------------------------------
# One measurement point
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The run's settings; ``None`` means "the scenario's default, else the suite's"."""

    suite: Suite
    duration_s: int | None
    connections: int | None
    workers: int | None
    warmup_s: int
    ready_timeout_s: float
    pinning: Pinning
    workdir: Path
    swserve_missing: str  # why the venv has no swserve command, or ""
    rates: tuple[float, ...] = OPENLOOP_RATES
    seed: int = OPENLOOP_SEED
    hup_interval_s: float = HUP_INTERVAL_S
    max_requests: int = MAX_REQUESTS

    def duration_for(self, scenario: Scenario) -> int:
        return self.duration_s or scenario.duration_s or self.suite.duration_s

    def connections_for(self, scenario: Scenario) -> int:
        return self.connections or scenario.connections or self.suite.connections

    def workers_for(self, scenario: Scenario) -> int:
        return self.workers or scenario.workers or 1

    def variants(self, scenario: Scenario) -> list[str]:
        """The points each (server, repeat) gets in ``scenario``."""
        if scenario.kind == RELOAD:
            return [BASELINE, RECYCLE, CHURN]
        if scenario.kind == OPENLOOP:
            return [rate_variant(rate) for rate in self.rates]
        if scenario.kind == SLOWLORIS:
            return [CLEAN, HELD]
        if scenario.kind == IDLE:
            return [WITHOUT, WITH]
        return [""]


def rate_variant(rate: float) -> str:
    return f"{rate:g}/s"


def variant_rate(variant: str) -> float:
    return float(variant.removesuffix("/s"))
