"""The open-file cache: hits without system calls, and changes seen after VALID seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swserve.static.cache import LIMIT, VALID, FileCache
from swserve.static.files import NotFound, OpenFile, open_file
from swserve.static.resolve import Mount, Rules, locate


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_bytes(b"one")
    return tmp_path


def _opener(root: Path):
    mount = Mount(b"/s", str(root.resolve()))
    rules = Rules((mount,))
    calls = []

    def reopen(target: bytes, accept: bytes) -> OpenFile:
        calls.append(target)
        found = locate(rules.mounts, target)
        if found is None:
            raise NotFound
        return open_file(found[0], found[1], found[2], rules, frozenset())

    return reopen, calls


def test_hit_then_revalidated_change_and_removal(root: Path) -> None:
    reopen, calls = _opener(root)
    cache = FileCache()
    key = (b"/s/a.txt", b"")
    assert cache.get(key, 0.0, reopen, key[0]) is None
    entry = cache.put(key, reopen(key[0], b""), 0.0)
    assert entry.body == b"one"
    calls.clear()
    assert cache.get(key, VALID / 2, reopen, key[0]) is entry
    assert calls == []  # a hit looks at nothing
    # unchanged after VALID: the same entry, checked once
    assert cache.get(key, VALID, reopen, key[0]) is entry
    assert calls == [b"/s/a.txt"]
    # changed: a new entry with the new body
    (root / "a.txt").write_bytes(b"two!")
    fresh = cache.get(key, 3 * VALID, reopen, key[0])
    assert fresh is not None
    assert fresh is not entry
    assert fresh.body == b"two!"
    # removed: gone from the cache (the slow path answers)
    (root / "a.txt").unlink()
    assert cache.get(key, 5 * VALID, reopen, key[0]) is None
    assert key not in cache.entries


def test_full_cache_starts_again_and_closes_descriptors(root: Path) -> None:
    reopen, _ = _opener(root)
    cache = FileCache()
    first = cache.put((b"/s/a.txt", b"0"), reopen(b"/s/a.txt", b""), 0.0)
    for i in range(1, LIMIT):
        cache.put((b"/s/a.txt", b"%d" % i), reopen(b"/s/a.txt", b""), 0.0)
    assert len(cache.entries) == LIMIT
    cache.put((b"/s/a.txt", b"last"), reopen(b"/s/a.txt", b""), 0.0)
    assert len(cache.entries) == 1
    with pytest.raises(OSError):
        os.fstat(first.file.fd)  # closed
    cache.clear()


def test_kept_bodies_stay_within_the_budget(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swserve.static import cache as cache_module

    monkeypatch.setattr(cache_module, "BUDGET", 3 * cache_module.SMALL)
    for name in "bcde":
        (root / f"{name}.bin").write_bytes(name.encode() * cache_module.SMALL)
    (root / "big.bin").write_bytes(b"x" * (cache_module.SMALL + 1))
    reopen, _ = _opener(root)
    cache = FileCache()

    def put(name: str, now: float = 0.0) -> bytes | None:
        target = f"/s/{name}".encode()
        return cache.put((target, b""), reopen(target, b""), now).body

    assert put("big.bin") is None  # over SMALL: streamed, never kept
    assert [put(f"{n}.bin") is not None for n in "bcde"] == [True, True, True, False]
    assert cache.kept == 3 * cache_module.SMALL
    # an entry dropped (changed on disk) gives its bytes back
    (root / "b.bin").write_bytes(b"B")
    assert cache.get((b"/s/b.bin", b""), 2 * VALID, reopen, b"/s/b.bin") is not None
    assert cache.kept == 2 * cache_module.SMALL + 1
    cache.clear()
    assert cache.kept == 0
