"""Where settings come from: the command line, the environment, a TOML file.

Precedence: command line > environment > file > default.  Every setting has
an environment variable ``SWSERVE_<NAME>`` (``SWSERVE_WORKERS=8``), plus the
well-known shorthands ``PORT``, ``WEB_CONCURRENCY`` and ``FORWARDED_ALLOW_IPS`` (below the
``SWSERVE_*`` names).  The file is ``--config PATH`` (TOML, settings at the
top level or under ``[tool.swserve]``), else ``[tool.swserve]`` in the
``pyproject.toml`` of the working directory, if it has one.

Values from the environment are strings and values from a file are TOML
types; both are converted by the setting's kind, so ``"16MiB"``,
``16777216`` and ``--max-body-size 16MiB`` mean the same thing.  This module
reads files and the environment it is given, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from swserve.config import SETTINGS, SETTINGS_BY_NAME, Setting, parse_size
from swserve.errors import ConfigError

SHORTHANDS: Final = {
    "PORT": "port",
    "WEB_CONCURRENCY": "workers",
    "FORWARDED_ALLOW_IPS": "forwarded_allow_ips",  # gunicorn's and uvicorn's name
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def coerce(setting: Setting, value: Any) -> Any:
    """A value from the environment (str) or a file (TOML) → the setting's type.

    Raises:
        ConfigError: naming the setting and what it expected.
    """
    kind = setting.kind
    what = setting.flags[0] if setting.kind != "argument" else "APP"
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "size":
            return (
                value
                if isinstance(value, int) and not isinstance(value, bool)
                else parse_size(str(value))
            )
        if kind == "choice":
            if str(value) not in setting.choices:
                raise ValueError
            return str(value)
        if kind == "list":
            if isinstance(value, list):
                return tuple(str(v) for v in value)
            return tuple(part.strip() for part in str(value).split(",") if part.strip())
        if not isinstance(value, str):
            raise ValueError
        return value
    except (ValueError, ConfigError):
        expected = {"bool": "true or false", "int": "a whole number", "float": "a number",
                    "size": "a size such as 1048576 or 16MiB", "list": "a list",
                    "choice": "one of " + ", ".join(setting.choices)}.get(kind, "a string")  # fmt: skip
        raise ConfigError(f"{what}: {value!r} is not {expected}") from None


def _key(name: str) -> str:
    return name.strip().replace("-", "_").lower()


def from_file(path: Path, *, section_only: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Read settings from a TOML file → (values, problems).

    Raises:
        ConfigError: the file cannot be read or is not TOML.
    """
    import tomllib  # deferred to the first file read: ~3 ms of start-up without one

    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("swserve") if section_only or "tool" in data else data
    if table is None:
        return {}, []
    values: dict[str, Any] = {}
    problems: list[str] = []
    for raw_key, raw_value in table.items():
        name = _key(raw_key)
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            import difflib  # only for a misspelt setting

            close = difflib.get_close_matches(name, SETTINGS_BY_NAME, n=1)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            problems.append(f"{path}: unknown setting {raw_key!r}{hint}")
            continue
        try:
            values[name] = coerce(setting, raw_value)
        except ConfigError as exc:
            problems.append(f"{path}: {exc}")
    return values, problems


def from_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Read settings from the environment → (values, problems, where each came from)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    origin: dict[str, str] = {}
    for var, name in SHORTHANDS.items():
        if environ.get(var):
            try:
                values[name] = coerce(SETTINGS_BY_NAME[name], environ[var])
                origin[name] = f"env {var}"
            except ConfigError as exc:
                problems.append(f"{var}: {exc}")
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            continue
        try:
            values[setting.name] = coerce(setting, raw)
            origin[setting.name] = f"env {setting.env}"
        except ConfigError as exc:
            problems.append(f"{setting.env}: {exc}")
    return values, problems, origin


def default_file(cwd: Path) -> Path | None:
    """``pyproject.toml`` in the working directory, if it has a ``[tool.swserve]`` table."""
    candidate = cwd / "pyproject.toml"
    if not candidate.is_file():
        return None
    import tomllib

    try:
        data = tomllib.loads(candidate.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return candidate if "swserve" in data.get("tool", {}) else None


def merge(
    cli: dict[str, Any],
    environ: Mapping[str, str],
    config_path: str | None,
    cwd: Path,
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """CLI > environment > file: → (values, source of each value, problems).

    Raises:
        ConfigError: the --config file cannot be read.
    """
    sources: dict[str, str] = {}
    problems: list[str] = []
    values: dict[str, Any] = {}
    path = Path(config_path) if config_path else default_file(cwd)
    if path is not None:
        file_values, file_problems = from_file(path, section_only=not config_path)
        values.update(file_values)
        sources.update(dict.fromkeys(file_values, f"file {path}"))
        problems += file_problems
    env_values, env_problems, env_origin = from_env(environ)
    values.update(env_values)
    sources.update(env_origin)
    problems += env_problems
    values.update(cli)
    sources.update(dict.fromkeys(cli, "command line"))
    return values, sources, problems
