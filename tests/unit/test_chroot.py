"""--chroot's start-up checks (swserve/process/chroot.py); the chroot itself: tests/integration/test_chroot.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swserve.errors import ConfigError
from swserve.process import chroot

needs_privilege = pytest.mark.skipif(not chroot.can_chroot(), reason="needs CAP_SYS_CHROOT")


@needs_privilege
def test_a_usable_directory_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jail" / "tmp").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert chroot.check("jail", spool=True) == str(tmp_path / "jail")


@needs_privilege
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "No such file or directory"),
        (lambda p: p.write_text("x"), "not a directory"),
        (lambda p: p.mkdir(), "tmp is missing"),
    ],
)
def test_unusable_directories(tmp_path: Path, make: object, message: str) -> None:
    where = tmp_path / "jail"
    make(where)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        chroot.check(str(where), spool=True)


@needs_privilege
def test_no_tmp_needed_without_spooling(tmp_path: Path) -> None:
    assert chroot.check(str(tmp_path), spool=False) == str(tmp_path)
    with pytest.raises(ConfigError, match="no confinement"):
        chroot.check("/", spool=False)


def test_spool_check_writes_and_removes_a_file(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    chroot.check_spool(str(tmp_path))
    assert os.listdir(tmp_path / "tmp") == []
    with pytest.raises(ConfigError, match="cannot write request-body spool files"):
        chroot.check_spool(str(tmp_path / "missing"))
