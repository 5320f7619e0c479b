"""--static and friends from the command line, the environment and a config file."""

from __future__ import annotations

from pathlib import Path

from swserve.config import SETTINGS_BY_NAME, Config, problems
from swserve.settings import sources
from swserve.static.serve import resolve_roots, rules_from


def test_env_and_file(tmp_path: Path) -> None:
    values, errors, _ = sources.from_env(
        {"SWSERVE_STATIC": "/static=a,/media=b", "SWSERVE_STATIC_FALLTHROUGH": "no"}
    )
    assert not errors
    assert values["static"] == ("/static=a", "/media=b")
    assert values["static_fallthrough"] is False
    config = tmp_path / "swserve.toml"
    config.write_text('static = ["/static=staticfiles"]\nstatic-max-age = 3600\n')
    values, errors = sources.from_file(config)
    assert not errors
    assert values["static"] == ("/static=staticfiles",)
    assert values["static_max_age"] == 3600


def test_bad_entries_are_one_line_problems() -> None:
    assert problems({"static": ("static=x",)}) == [
        "--static prefix must be a path starting with / (got 'static')"
    ]
    assert problems({"static": ("/static",)})[0].startswith("--static takes URL_PREFIX=DIRECTORY")
    assert problems({"static_max_age": -1})
    assert SETTINGS_BY_NAME["static"].section == "Static files"


def test_roots_are_resolved_and_longest_prefix_first(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    entries = resolve_roots((f"/s={tmp_path / 'link'}", f"/s/admin={tmp_path}"))
    assert entries == (f"/s={tmp_path / 'a'}", f"/s/admin={tmp_path}")
    rules = rules_from(Config(static=entries))
    assert rules is not None
    assert [m.prefix for m in rules.mounts] == [b"/s/admin", b"/s"]
    assert rules_from(Config()) is None
