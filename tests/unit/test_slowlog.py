"""worker/slowlog.py: which running requests a SIGUSR2 from the reactor logs."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from swserve.worker.slowlog import Running, SlowLog


def test_a_request_the_reactor_saw_past_the_limit_is_logged_though_it_started_here_later(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The reactor's clock starts at dispatch; ours a little later: 0.45 s of a 0.5 s limit."""
    log = SlowLog(0.5, worker_id=1)
    log.running[(1, 1)] = Running("GET", "/slow", started=time.monotonic() - 0.45,
                                  thread=threading.get_ident())  # fmt: skip
    log.dump(sys._getframe())
    err = capfd.readouterr().err
    assert "[slowlog] GET /slow has run 0." in err
    assert "test_slowlog.py" in err  # the stack of the thread serving it
    assert log.running[(1, 1)].logged


def test_a_young_request_is_not_logged_and_none_twice(capfd: pytest.CaptureFixture[str]) -> None:
    log = SlowLog(1.0, worker_id=1)
    now = time.monotonic()
    log.running[(1, 1)] = Running("GET", "/young", started=now - 0.2)
    log.running[(1, 2)] = Running("GET", "/old", started=now - 2.0)
    log.dump(sys._getframe())
    log.dump(sys._getframe())
    err = capfd.readouterr().err
    assert err.count("[slowlog]") == 1
    assert "/old" in err
