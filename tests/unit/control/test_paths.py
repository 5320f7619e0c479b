"""control/paths.py: where the control socket goes, and how ``swserve ctl`` finds it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swserve.control import paths
from swserve.errors import ConfigError


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / "swserve"


def test_none_turns_it_off_and_a_path_is_taken_as_given(runtime: Path) -> None:
    assert paths.socket_path("none", "", 1) is None
    assert paths.socket_path("/srv/x.sock", "", 1) == Path("/srv/x.sock")
    assert not runtime.exists()


def test_beside_the_pid_file() -> None:
    assert paths.socket_path("auto", "/run/app.pid", 7) == Path("/run/app.ctl.sock")
    assert paths.beside_pid_file("/run/app") == Path("/run/app.ctl.sock")


def test_in_the_users_runtime_dir_made_private(runtime: Path) -> None:
    assert paths.socket_path("auto", "", 42) == runtime / "42.sock"
    assert runtime.stat().st_mode & 0o777 == 0o700


def test_a_runtime_dir_of_another_user_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/")  # root's, but not a directory we own unless root
    if os.geteuid() == 0:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert paths.runtime_dir() == Path(f"/tmp/swserve-{os.geteuid()}")


def test_a_directory_open_to_others_or_a_symlink_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(ConfigError, match="open to other users"):
        paths.ensure_private(open_dir)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="not a directory of this user"):
        paths.ensure_private(link)


def test_find_the_only_running_server(runtime: Path) -> None:
    with pytest.raises(ConfigError, match="no running swserve of this user"):
        paths.find()
    runtime.mkdir(mode=0o700)
    (runtime / f"{os.getpid()}.sock").touch()
    (runtime / "999999999.sock").touch()  # a server that died without cleaning up
    assert paths.find() == runtime / f"{os.getpid()}.sock"
    (runtime / f"{os.getppid()}.sock").touch()
    with pytest.raises(ConfigError, match="several servers are running"):
        paths.find()
    assert paths.find(control_socket="/x.sock") == Path("/x.sock")
    assert paths.find(pid_file="/run/a.pid") == Path("/run/a.ctl.sock")


def test_an_empty_setting_is_a_config_problem() -> None:
    from swserve.config import problems

    assert problems({"control_socket": " "}) == [
        "--control-socket must be a path, auto or none (got ' ')"
    ]
    assert problems({"control_socket": "none"}) == []


def test_sockets_of_dead_servers_are_removed(tmp_path: Path) -> None:
    import socket

    def bound(name: str) -> Path:
        path = tmp_path / name
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
        return path

    dead, live = bound("999999999.sock"), bound(f"{os.getpid()}.sock")
    not_a_socket = tmp_path / "999999998.sock"
    not_a_socket.touch()
    paths.remove_stale(tmp_path)
    assert not dead.exists()
    assert live.exists()
    assert not_a_socket.exists()  # only sockets are ours to remove
