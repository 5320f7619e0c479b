"""The sans-IO parts of the logging set-up: when to colour, the line formats, config files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from swserve.errors import ConfigError
from swserve.logs.setup import ErrorFormatter, colour_wanted, default_config, load_config_file


@pytest.mark.parametrize(
    ("isatty", "env", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # set but empty: no preference (no-color.org)
        (False, {"FORCE_COLOR": "1"}, True),
        (False, {"FORCE_COLOR": "0"}, False),
        (False, {"FORCE_COLOR": ""}, False),
        (True, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),  # the reader's wish wins
        (True, {"TERM": "dumb"}, False),
    ],
)
def test_colour_wanted(isatty: bool, env: dict[str, str], expected: bool) -> None:
    assert colour_wanted(isatty, env) is expected


def _record(level: int, message: str) -> logging.LogRecord:
    record = logging.LogRecord("swserve.error", level, __file__, 1, message, None, None)
    record.created = 0.0
    record.process = 4242
    return record


def test_plain_line_is_unchanged() -> None:
    line = ErrorFormatter(colour=False).format(_record(logging.INFO, "Listening on x"))
    assert line.endswith("] [4242] [INFO] Listening on x")
    assert line.startswith("[19")  # the time, [1970-01-01 …]
    assert "\x1b" not in line


@pytest.mark.parametrize(
    ("level", "code"),
    [(logging.DEBUG, "36"), (logging.INFO, "32"), (logging.WARNING, "33"), (logging.ERROR, "31")],
)
def test_coloured_line_pads_and_colours_the_level(level: int, code: str) -> None:
    line = ErrorFormatter(colour=True).format(_record(level, "hello"))
    name = logging.getLevelName(level)
    assert f"\x1b[{code}m{name:<8}\x1b[0m hello" in line
    assert "[   4242]" in line
    # every message starts in the same column, whatever its level
    plain = line.replace("\x1b[2m", "").replace("\x1b[0m", "").replace(f"\x1b[{code}m", "")
    assert plain.index("hello") == len("[1970-01-01 00:00:00 +0000] [   4242] ") + 9


def test_default_config_levels() -> None:
    config = default_config("debug", colour=False)
    assert config["loggers"]["swserve"]["level"] == "DEBUG"
    assert config["loggers"]["swserve.access"]["level"] == "INFO"  # --access-log switches it
    assert config["disable_existing_loggers"] is False


def test_load_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"version": 1, "root": {"level": "INFO"}}')
    (tmp_path / "a.toml").write_text('version = 1\n[root]\nlevel = "INFO"\n')
    for name in ("a.json", "a.toml"):
        config = load_config_file(str(tmp_path / name))
        assert config["root"] == {"level": "INFO"}
        # swserve's loggers exist before the file is applied: do not disable them
        assert config["disable_existing_loggers"] is False
    (tmp_path / "b.json").write_text('{"version": 1, "disable_existing_loggers": true}')
    assert load_config_file(str(tmp_path / "b.json"))["disable_existing_loggers"] is True


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("x.json", None, "No such file or directory"),
        ("x.json", "{", "not valid JSON"),
        ("x.toml", "a = = 1", "not valid TOML"),
        ("x.json", '"text"', "must hold a dictConfig object, not str"),
        ("x.ini", "[loggers]", "must be a .json or .toml file"),
        ("x.json", b"\xff\xfe{", "not valid JSON"),
    ],
)
def test_load_errors_are_one_line(
    tmp_path: Path, name: str, content: str | bytes | None, reason: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path))
    message = str(info.value)
    assert message.startswith(f"--log-config {path}: ")
    assert reason in message
    assert "\n" not in message


# The default set-up is made by hand (no logging.config import at start-up); it must
# leave logging exactly as dictConfig(default_config(...)) does.  Run in a fresh
# interpreter each: dictConfig closes every handler of the process, pytest's too.
_LOGGING_STATE = """
import json, logging, sys
from swserve.logs import setup as logs
stale = logging.getLogger("swserve.error")
stale.addHandler(logging.NullHandler())
stale.setLevel("ERROR")
stale.propagate = False
logging.getLogger("swserve.access").addHandler(logging.NullHandler())
if sys.argv[1] == "dictconfig":
    logs._apply(logs.default_config(sys.argv[2], colour=sys.argv[3] == "1"), "")
else:
    logs._apply_default(sys.argv[2], colour=sys.argv[3] == "1")
state = {}
for name in ("swserve", "swserve.access", "swserve.error"):
    logger = logging.getLogger(name)
    state[name] = [
        logger.level, logger.propagate, logger.disabled,
        [
            [type(h).__name__, h.name, h.level, h.stream is sys.stderr,
             type(h.formatter).__name__, h.formatter._fmt, h.formatter.datefmt,
             getattr(h.formatter, "colour", None)]
            for h in logger.handlers
        ],
    ]
print(json.dumps(state))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("level", "colour"), [("info", "0"), ("debug", "1"), ("warning", "0")])
def test_default_setup_is_what_dictconfig_would_make(level: str, colour: str) -> None:
    import subprocess
    import sys

    def state(how: str) -> str:
        argv = [sys.executable, "-c", _LOGGING_STATE, how, level, colour]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    by_hand = state("by-hand")
    assert '"StreamHandler", "error"' in by_hand
    assert by_hand == state("dictconfig")
