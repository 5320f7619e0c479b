"""The pure parts of the process settings: validation, the reload filter, CPU choice,
user lookup, and the pid file's rules (on real files in tmp_path)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from swserve import cli
from swserve.config import parse_umask, problems
from swserve.errors import ConfigError
from swserve.process.affinity import core_for
from swserve.process.daemon import PidFile
from swserve.process.privileges import Identity, check_allowed, resolve
from swserve.process.reloader import ReloadFilter

# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mask"), [("0o027", 0o027), ("027", 0o027), ("27", 0o027), ("0", 0), ("0o777", 0o777)]
)
def test_umask_is_read_as_octal(text: str, mask: int) -> None:
    assert parse_umask(text) == mask


@pytest.mark.parametrize("text", ["089", "0o1000", "abc", "0x1f", "", "-1"])
def test_bad_umask_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--umask must be an octal mode"):
        parse_umask(text)


def test_problems_name_bad_umask_and_reload_with_daemon() -> None:
    assert problems({"umask": "0o027", "reload": True}) == []
    assert problems({"umask": "8"}) == [
        "--umask must be an octal mode up to 0o777, e.g. 0o027 (got '8')"
    ]
    assert problems({"reload": True, "daemon": True}) == [
        "--reload cannot be used with --daemon: run the reloader in the foreground"
    ]


def test_reload_with_daemon_exits_2_from_the_command_line() -> None:
    result = CliRunner().invoke(cli.make_command(), ["--reload", "--daemon"], env={})
    assert result.exit_code == 2
    assert "Error: --reload cannot be used with --daemon" in result.output


# -- reload filter ---------------------------------------------------------------------------

ROOT = "/srv/app"


@pytest.mark.parametrize(
    ("path", "include", "exclude", "reload"),
    [
        ("app.py", (), (), True),
        ("pkg/views.py", (), (), True),
        ("app.pyc", (), (), False),
        ("pkg/__pycache__/views.cpython-311.pyc", (), (), False),
        ("pkg/__pycache__/odd.py", (), (), False),
        (".hidden.py", (), (), False),
        (".git/hooks/x.py", (), (), False),
        (".venv/lib/site.py", (), (), False),
        ("templates/index.html", (), (), False),
        # --reload-include adds to *.py, and wins over the default exclusions for a name
        ("templates/index.html", ("*.html",), (), True),
        ("app.py", ("*.html",), (), True),
        (".env", (".env",), (), True),
        (".venv/lib/page.html", ("*.html",), (), False),  # never inside hidden directories
        # --reload-exclude always wins, on a name, a directory or a relative path
        ("tests/test_app.py", (), ("tests",), False),
        ("migrations/0001.py", (), ("migrations/*",), False),
        ("local_settings.py", ("*.py",), ("local_*",), False),
    ],
)
def test_reload_filter(
    path: str, include: tuple[str, ...], exclude: tuple[str, ...], reload: bool
) -> None:
    keep = ReloadFilter([ROOT], include, exclude)
    assert keep(None, f"{ROOT}/{path}") is reload


def test_reload_filter_uses_the_nearest_root() -> None:
    # a watched directory inside a hidden one: what counts is the path below the root
    keep = ReloadFilter(["/srv", "/srv/.build/app"], (), ())
    assert keep(None, "/srv/.build/app/main.py")
    assert not keep(None, "/srv/.build/other/main.py")


# -- CPU affinity ----------------------------------------------------------------------------


def test_worker_slots_map_to_usable_cpus_in_order() -> None:
    cpus = {4, 5, 6}  # a container's cpuset: not 0..n-1
    assert [core_for(slot, cpus) for slot in range(1, 8)] == [4, 5, 6, 4, 5, 6, 4]
    assert core_for(1, {0}) == 0


# -- --user / --group ------------------------------------------------------------------------


def test_resolve_names_and_numeric_ids() -> None:
    nobody = pwd.getpwnam("nobody")
    expected = Identity(nobody.pw_uid, nobody.pw_gid, "nobody")
    assert resolve("nobody", "") == expected
    assert resolve(str(nobody.pw_uid), "") == expected
    assert resolve("nobody", "0") == Identity(nobody.pw_uid, 0, "nobody")
    assert resolve("", "root") == Identity(None, 0, None)
    assert resolve("", "") == Identity()
    assert not Identity().changes


def test_resolve_refuses_unknown_names() -> None:
    with pytest.raises(ConfigError, match="--user 'no-such-user-swserve': no such user"):
        resolve("no-such-user-swserve", "")
    with pytest.raises(ConfigError, match="--group 'no-such-group-swserve': no such group"):
        resolve("nobody", "no-such-group-swserve")


def test_a_uid_without_passwd_entry_needs_a_group() -> None:
    unused = next(uid for uid in range(54321, 60000) if not _has_passwd(uid))
    with pytest.raises(ConfigError, match="give --group"):
        resolve(str(unused), "")
    assert resolve(str(unused), "54321") == Identity(unused, 54321, None)


def _has_passwd(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_switching_needs_root_unless_already_there() -> None:
    check_allowed(Identity(1000, 1000, "u"), euid=0, egid=0)
    check_allowed(Identity(1000, 1000, "u"), euid=1000, egid=1000)
    with pytest.raises(ConfigError, match="--user needs root"):
        check_allowed(Identity(1001, None, "v"), euid=1000, egid=1000)
    with pytest.raises(ConfigError, match="--group needs root"):
        check_allowed(Identity(None, 0, None), euid=1000, egid=1000)


# -- the pid file ----------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_pid_file_replaces_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    for stale in (f"{_dead_pid()}\n", "garbage", "", f"{os.getpid()}\n"):
        path.write_text(stale)
        pid_file = PidFile(str(path))
        pid_file.write()
        assert path.read_text() == f"{os.getpid()}\n"
        assert pid_file.remove() == ""
        assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_pid_file_of_a_live_process_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    path.write_text(f"{os.getppid()}\n")
    with pytest.raises(ConfigError, match=f"process {os.getppid()} is running"):
        PidFile(str(path)).check()
    with pytest.raises(ConfigError):
        PidFile(str(path)).write()
    assert path.read_text() == f"{os.getppid()}\n"


def test_pid_file_is_removed_only_while_it_is_ours(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    pid_file = PidFile(str(path))
    assert pid_file.remove() == ""  # never written: nothing to do
    pid_file.write()
    path.write_text("12345\n")  # another server took it over
    assert pid_file.remove() == ""
    assert path.read_text() == "12345\n"


def test_pid_file_path_is_fixed_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pid_file = PidFile("x.pid")
    monkeypatch.chdir("/")
    pid_file.write()
    assert (tmp_path / "x.pid").exists()
    pid_file.remove()


def test_unwritable_pid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--pid-file"):
        PidFile(str(tmp_path / "missing-dir" / "x.pid")).write()
