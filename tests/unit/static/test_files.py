"""Opening static files safely: symlinks, dotfiles, devices, FIFOs, directories, variants."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swserve.static.files import Forbidden, IsDirectory, NotFound, OpenFile, open_file
from swserve.static.resolve import Mount, Rules


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_text("body{}")
    (root / "css" / "app.css.gz").write_bytes(b"gz")
    (root / "css" / "app.css.br").write_bytes(b"brotli")
    (root / ".env").write_text("SECRET")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("x")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>")
    (root / "empty").mkdir()
    (tmp_path / "outside.txt").write_text("outside")
    (root / "out").symlink_to(tmp_path / "outside.txt")
    (root / "outdir").symlink_to(tmp_path)
    (root / "in").symlink_to(root / "css" / "app.css")
    (root / "null").symlink_to("/dev/null")
    os.mkfifo(root / "fifo")
    return root


def _open(root: Path, segments: list[str], slash: bool = False, **rules: object) -> OpenFile:
    mount = Mount(b"/s", str(root.resolve()))
    return open_file(mount, segments, slash, Rules((mount,), **rules), frozenset())  # type: ignore[arg-type]


def test_regular_file(tree: Path) -> None:
    opened = _open(tree, ["css", "app.css"])
    try:
        assert os.pread(opened.fd, 100, 0) == b"body{}"
        assert opened.info.size == 6
        assert opened.info.has_variants
        assert not opened.info.encoding
    finally:
        os.close(opened.fd)


def test_precompressed_choice(tree: Path) -> None:
    mount = Mount(b"/s", str(tree.resolve()))
    for accepted, coding, body in (({"br", "gzip"}, "br", b"brotli"), ({"gzip"}, "gzip", b"gz")):
        opened = open_file(mount, ["css", "app.css"], False, Rules((mount,)), frozenset(accepted))
        try:
            assert opened.info.encoding == coding
            assert os.pread(opened.fd, 100, 0) == body
            assert opened.info.name == "app.css"
        finally:
            os.close(opened.fd)


@pytest.mark.parametrize(
    ("segments", "error"),
    [
        (["missing.txt"], NotFound),
        (["css", "app.css", "x"], NotFound),
        ([".env"], Forbidden),
        ([".hidden", "x.txt"], Forbidden),
        (["out"], Forbidden),  # a symlink out of the root
        (["outdir", "outside.txt"], Forbidden),  # through a directory symlink
        (["null"], Forbidden),  # a device
        (["fifo"], Forbidden),  # opening it would block
        (["empty"], NotFound),  # a directory: no listing
        (["docs"], NotFound),  # no --static-index
    ],
)
def test_refusals(tree: Path, segments: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        _open(tree, segments)


def test_symlink_inside_is_served(tree: Path) -> None:
    opened = _open(tree, ["in"])
    os.close(opened.fd)


def test_opt_ins(tree: Path) -> None:
    os.close(_open(tree, [".env"], allow_dotfiles=True).fd)
    os.close(_open(tree, ["out"], follow_symlinks=True).fd)
    with pytest.raises(Forbidden):
        _open(tree, ["null"], follow_symlinks=True)  # never a device


def test_index(tree: Path) -> None:
    opened = _open(tree, ["docs"], True, index="index.html")
    try:
        assert opened.info.name == "index.html"
    finally:
        os.close(opened.fd)
    with pytest.raises(IsDirectory):
        _open(tree, ["docs"], False, index="index.html")
    with pytest.raises(NotFound):
        _open(tree, ["empty"], True, index="index.html")
