"""Process settings with real processes: --daemon/--pid-file, --user/--group, --umask,
--chdir, --cpu-affinity, --reload."""

from __future__ import annotations

import os
import pwd
import select
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import swserve
from tests.integration.conftest import APPS, Server, Starter

# -- helpers ------------------------------------------------------------------------------


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return text
        time.sleep(0.01)  # polling a file with a deadline, not sleeping to synchronise
    raise AssertionError(f"{path} did not appear")


def wait_gone(pid: int, timeout: float = 40.0) -> None:
    """Wait for a process that is not our child to exit (a pidfd is readable then)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([fd], [], [], timeout)[0], f"pid {pid} still runs"
    finally:
        os.close(fd)


def status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict of field → value (tabs kept between numbers)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def by_title(server: Server) -> dict[str, int]:
    return {title: pid for pid, title in server.children().items()}


def session_members(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def daemon_sessions() -> Iterator[Callable[[Path], None]]:
    """Kill, at teardown, every process of the session of the pid named in each pid file.

    A daemon leaves the test's process group, so the serve fixture cannot reach it.
    """
    pid_files: list[Path] = []
    yield pid_files.append
    for pid_file in pid_files:
        try:
            sid = os.getsid(int(pid_file.read_text()))
        except (OSError, ValueError):
            continue  # removed on a clean exit, or never written
        for pid in session_members(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- --daemon and --pid-file -------------------------------------------------------------


def test_daemon_with_pid_file(
    serve: Starter, tmp_path: Path, daemon_sessions: Callable[[Path], None]
) -> None:
    pid_file, ready, log = tmp_path / "swserve.pid", tmp_path / "ready", tmp_path / "log"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n")  # a stale pid file: replaced
    daemon_sessions(pid_file)
    starter = serve(
        "wsgi_echo:app", "--daemon", "--pid-file", str(pid_file), "--ready-file", str(ready),
        "--log-file", str(log), wait=False,
    )  # fmt: skip
    # the command returns once the daemon has bound and written its pid file
    assert starter.wait_exit(30) == 0, starter.logs()
    pid = int(pid_file.read_text())
    assert pid not in (dead.pid, starter.pid)
    url = wait_for_file(ready).strip()
    assert httpx.get(f"{url}/pid", timeout=10).status_code == 200
    # detached: a session of its own, not a session leader, stdin from /dev/null
    assert os.getsid(pid) not in (os.getsid(0), starter.pid, pid)
    assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
    assert os.readlink(f"/proc/{pid}/fd/2") == str(log)
    assert status(pid)["Name"].startswith("swserve")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not pid_file.exists(), log.read_text()
    assert "stopped;" in log.read_text()


def test_daemon_reports_its_failure_to_the_starting_command(serve: Starter, tmp_path: Path) -> None:
    pid_file = tmp_path / "missing-dir" / "swserve.pid"  # only writing it can fail
    server = serve("wsgi_echo:app", "--daemon", "--pid-file", str(pid_file), wait=False)
    server.expected_exit = 1
    assert server.wait_exit(20) == 1
    lines = [line for line in server.stderr if line.strip()]
    assert lines == [f"swserve: --pid-file {pid_file}: No such file or directory"], server.logs()


def test_pid_file_of_a_live_process_is_refused(serve: Starter, tmp_path: Path) -> None:
    pid_file = tmp_path / "swserve.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this test is alive
    server = serve("wsgi_echo:app", "--pid-file", str(pid_file), wait=False)
    server.expected_exit = 1
    assert server.wait_exit(20) == 1
    lines = [line for line in server.stderr if line.strip()]
    assert len(lines) == 1, server.logs()
    assert f"process {os.getpid()} is running" in lines[0]
    assert pid_file.read_text() == f"{os.getpid()}\n"


def test_pid_file_without_daemon_holds_the_master(serve: Starter, tmp_path: Path) -> None:
    pid_file = tmp_path / "swserve.pid"
    server = serve("wsgi_echo:app", "--pid-file", str(pid_file))
    assert pid_file.read_text() == f"{server.pid}\n"
    server.send(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not pid_file.exists()


# -- --user / --group -----------------------------------------------------------------------

PROBE = "import concurrent.futures.thread, uvloop, httptools, swserve.worker.runner_wsgi, wsgi_echo"


def _runs_as(user: pwd.struct_passwd, python: str, env: dict[str, str]) -> bool:
    try:
        probe = subprocess.run(
            [python, "-c", PROBE],
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            env=env,
            cwd="/",
            capture_output=True,
            timeout=30,
            check=False,
        )
    except PermissionError:  # the interpreter itself is out of the user's reach
        return False
    return probe.returncode == 0


def unprivileged_python(user: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    """An interpreter that ``user`` can run swserve with, and its environment.

    Our own interpreter first.  If ``user`` cannot read it (a Python built under
    /root, mode 0700, as on our CI machines), the system's Python of the same
    version, given our site-packages and swserve's source: compiled extensions
    share the ABI of one minor version.
    """
    root = str(Path(swserve.__file__).parents[1])
    base = {**os.environ, "PYTHONPATH": os.pathsep.join([root, str(APPS)])}
    if _runs_as(user, sys.executable, base):
        return sys.executable, base
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    env = {
        **base,
        "PYTHONPATH": os.pathsep.join([root, str(APPS), sysconfig.get_paths()["purelib"]]),
    }
    if os.path.exists(system) and _runs_as(user, system, env):
        return system, env
    pytest.skip(f"{user.pw_name} can read neither {sys.executable}'s installation nor {system}")


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_drops_privileges_of_every_process(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    python, env = unprivileged_python(nobody)
    server = Server(
        [python, "-m", "swserve", "wsgi_echo:app", "--bind", "127.0.0.1:0", "--workers", "2",
         "--app-dir", str(APPS), "--user", "nobody"],
        env=env,
    )  # fmt: skip
    try:
        server.wait_ready()
        assert httpx.get(f"{server.url}/pid", timeout=10).status_code == 200
        titles = by_title(server)
        assert {
            "swserve: master",
            "swserve: manager",
            "swserve: worker 1",
            "swserve: worker 2",
        } <= set(titles)
        for title, pid in titles.items():
            fields = status(pid)
            # real, effective, saved and filesystem ids: none may be root's
            assert fields["Uid"].split() == [str(nobody.pw_uid)] * 4, title
            assert fields["Gid"].split() == [str(nobody.pw_gid)] * 4, title
            assert "0" not in fields["Groups"].split(), title  # initgroups replaced root's groups
        server.send(signal.SIGTERM)
        assert server.wait_exit() == 0, server.logs()
    finally:
        server.kill_group()


def test_unknown_user_is_one_line_and_nonzero(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--user", "no-such-user-swserve", wait=False)
    server.expected_exit = 1
    assert server.wait_exit(20) == 1
    lines = [line for line in server.stderr if line.strip()]
    assert len(lines) == 1, server.logs()
    assert "--user 'no-such-user-swserve': no such user" in lines[0]


# -- --umask, --chdir, --cpu-affinity --------------------------------------------------------


def test_umask_applies_to_every_process(serve: Starter) -> None:
    mine = os.umask(0o022)
    os.umask(mine)
    assert mine != 0o027  # otherwise the test could not tell
    server = serve("wsgi_echo:app", "--umask", "0o027")
    for title, pid in by_title(server).items():
        assert status(pid)["Umask"] == "0027", title


def test_chdir_before_the_app_is_imported(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "greeting.txt").write_text("hello from site")
    (site / "chdir_app.py").write_text(
        "GREETING = open('greeting.txt').read()  # relative: needs --chdir\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [GREETING.encode()]\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = Server(
        [sys.executable, "-m", "swserve", "chdir_app:app", "--chdir", str(site),
         "--bind", "127.0.0.1:0", "--workers", "1"],
        cwd=elsewhere,
    )  # fmt: skip
    try:
        server.wait_ready()
        assert httpx.get(server.url, timeout=10).text == "hello from site"
        server.send(signal.SIGTERM)
        assert server.wait_exit() == 0
    finally:
        server.kill_group()


def test_chdir_to_a_missing_directory_is_one_line(serve: Starter, tmp_path: Path) -> None:
    server = serve("wsgi_echo:app", "--chdir", str(tmp_path / "nope"), wait=False)
    server.expected_exit = 1
    assert server.wait_exit(20) == 1
    lines = [line for line in server.stderr if line.strip()]
    assert len(lines) == 1, server.logs()
    assert f"--chdir {tmp_path / 'nope'}: No such file or directory" in lines[0]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs at least 2 CPU cores")
def test_cpu_affinity_pins_worker_i_and_the_reactor(serve: Starter) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    server = serve("wsgi_echo:app", "--cpu-affinity", workers=2)
    titles = by_title(server)
    # worker ids are 1-based: worker i takes the (i-1)-th usable CPU, as Swoole's worker i-1
    assert os.sched_getaffinity(titles["swserve: worker 1"]) == {cpus[0]}
    assert os.sched_getaffinity(titles["swserve: worker 2"]) == {cpus[1 % len(cpus)]}
    assert os.sched_getaffinity(titles["swserve: master"]) == {cpus[0]}  # reactor 1
    assert os.sched_getaffinity(titles["swserve: manager"]) == set(cpus)  # never pinned


# -- --reload -------------------------------------------------------------------------------


def test_reload_picks_up_an_edited_file(serve: Starter, tmp_path: Path) -> None:
    module = tmp_path / "reload_app.py"
    source = (
        "VERSION = {!r}\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [VERSION.encode()]\n"
    )
    module.write_text(source.format("v1"))
    server = serve(
        "reload_app:app", "--app-dir", str(tmp_path), "--reload", "--reload-dir", str(tmp_path)
    )
    reloader = int(server.wait_for(r"reloader \(pid (\d+)\) watching").group(1))
    assert by_title(server)["swserve: reloader"] == reloader
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text == "v1"
        (tmp_path / "notes.txt").write_text("not a watched file")
        # a different length, so no stale .pyc can pass for the new source
        module.write_text(source.format("version two"))
        deadline = time.monotonic() + 30
        served = []
        while time.monotonic() < deadline:
            response = client.get("/")
            assert response.status_code == 200  # no request fails during the reload
            served.append(response.text)
            if response.text == "version two":
                break
        assert served[-1] == "version two", server.logs()
    server.wait_for(r"reloader: reload_app\.py changed; reloading the workers")
    assert "notes.txt" not in server.logs()
    server.send(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not Path(f"/proc/{reloader}").exists(), "the reloader outlived the master"


def test_reloader_dies_with_a_killed_master(serve: Starter, tmp_path: Path) -> None:
    server = serve("wsgi_echo:app", "--reload", "--reload-dir", str(tmp_path), workers=1)
    server.expected_exit = None
    reloader = int(server.wait_for(r"reloader \(pid (\d+)\) watching").group(1))
    server.send(signal.SIGKILL)  # no clean-up code runs: the kernel must end the watcher
    wait_gone(reloader, timeout=20)


def test_reload_with_daemon_is_a_usage_error(
    serve: Starter, tmp_path: Path, daemon_sessions: Callable[[Path], None]
) -> None:
    pid_file = tmp_path / "swserve.pid"
    daemon_sessions(pid_file)  # should the check ever go, the daemon is still killed
    server = serve("wsgi_echo:app", "--reload", "--daemon", "--pid-file", str(pid_file), wait=False)
    server.expected_exit = 2
    assert server.wait_exit(20) == 2
    assert "Error: --reload cannot be used with --daemon" in server.logs()
    assert "Traceback" not in server.logs()


def test_reload_without_watchfiles_says_what_to_install(serve: Starter, tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "watchfiles"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'watchfiles'\")\n")
    path = os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))
    server = serve("wsgi_echo:app", "--reload", wait=False, env={"PYTHONPATH": path})
    server.expected_exit = 1
    assert server.wait_exit(20) == 1
    lines = [line for line in server.stderr if line.strip()]
    assert len(lines) == 1, server.logs()
    assert "pip install 'swserve[reload]'" in lines[0]
