"""worker/slowlog.py: which running requests a SIGUSR2 from the reactor logs."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from swserve.worker import slowlog
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


def test_a_dump_on_demand_names_every_running_request_whatever_its_age(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`swserve ctl slowlog`: the stacks go to the log and to the master's file, now."""
    monkeypatch.setattr(slowlog, "DUMP_DIR", str(tmp_path))
    log = SlowLog(30.0, worker_id=3)
    log.running[(1, 1)] = Running("GET", "/young", thread=threading.get_ident())
    log._dump_now(0, sys._getframe())
    written = Path(slowlog.dump_path(str(tmp_path), os.getpid())).read_text()
    assert written.startswith(f"[stack] GET /young has run 0.0s in worker 3 (pid {os.getpid()})")
    assert "test_slowlog.py" in written
    assert capfd.readouterr().err == written
    assert not log.running[(1, 1)].logged  # the slowlog proper still logs it once, later


def test_without_tracked_requests_every_thread_is_dumped() -> None:
    """No --slowlog-timeout: no request is tracked, so every thread's stack is the answer."""
    started, release = threading.Event(), threading.Event()

    def parked_in_the_app() -> None:
        started.set()
        release.wait(10)

    thread = threading.Thread(target=parked_in_the_app)
    thread.start()
    try:
        started.wait(10)
        text = SlowLog(0.0, worker_id=1).stacks_now(sys._getframe())
    finally:
        release.set()
        thread.join(10)
    assert text.count("[stack] thread ") >= 2
    assert "parked_in_the_app" in text


def test_the_dump_signal_is_ignored_until_a_worker_installs_its_handler() -> None:
    """Its default action would end the process: a ctl slowlog to a booting worker must not."""
    import signal as signals

    from swserve.process.shared import DUMP_SIGNAL, MASTER_SIGNALS, ignore_master_signals

    saved = {sig: signals.getsignal(sig) for sig in (*MASTER_SIGNALS, DUMP_SIGNAL)}
    try:
        ignore_master_signals()
        assert signals.getsignal(DUMP_SIGNAL) == signals.SIG_IGN
    finally:
        for sig, handler in saved.items():
            signals.signal(sig, handler)
