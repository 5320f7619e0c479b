from __future__ import annotations

import os
import signal

from swserve.errors import EXIT_APP_LOAD
from swserve.manager import policy


def test_describe_exit_code() -> None:
    ex = policy.Exit(2, 123, 1, None, expected=False)
    assert policy.describe(ex) == "worker 2 (pid 123) exited with code 1"


def test_describe_signal_names_it() -> None:
    ex = policy.Exit(1, 7, None, signal.SIGSEGV, expected=False)
    assert policy.describe(ex) == "worker 1 (pid 7) was killed by SIGSEGV"


def test_stray_sigkill_suggests_oom() -> None:
    ex = policy.Exit(1, 7, None, signal.SIGKILL, expected=False)
    assert policy.describe(ex).endswith("(perhaps out of memory?)")
    ours = policy.Exit(1, 7, None, signal.SIGKILL, expected=True)
    assert "memory" not in policy.describe(ours)


def test_decide() -> None:
    crash = policy.Exit(1, 7, 1, None, expected=False)
    assert policy.decide(crash, stopping=False) == policy.RESPAWN
    assert policy.decide(crash, stopping=True) == policy.FORGET
    boot = policy.Exit(1, 7, EXIT_APP_LOAD, None, expected=False)
    assert policy.decide(boot, stopping=False) == policy.HALT_BOOT
    retired = policy.Exit(1, 7, 0, None, expected=True)
    assert policy.decide(retired, stopping=False) == policy.FORGET


def test_from_status_decodes_wait_statuses() -> None:
    # build real wait statuses from real children
    pid = os.fork()
    if pid == 0:
        os._exit(5)
    _, status = os.waitpid(pid, 0)
    assert policy.from_status(1, pid, status, False).code == 5
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    ex = policy.from_status(1, pid, status, False)
    assert ex.signal == signal.SIGKILL
    assert ex.code is None
