"""The docs name only settings that exist (issue 17: docs that match the server).

Every ``--flag`` and ``SWSERVE_*`` variable that ``docs/*.md`` and ``README.md``
give as swserve's must be in the settings table (``config.SETTINGS``) or be
one of the CLI's own options (those of ``swserve ctl`` and ``swserve top``
included).  What counts as swserve's:

* in a fenced code block, the flags on a ``swserve`` command line (a command
  of another program, such as ``docker run`` or ``wrk``, is not checked);
* in a table whose header names another server (gunicorn, uvicorn, granian),
  only the ``swserve`` column; in any other table, every cell;
* elsewhere, every flag in backticks, unless the code span is another
  program's command (``docker run --env-file``) or the sentence gives it as
  another program's (``FOREIGN`` below lists those, each with its file).

And the reverse: ``docs/settings.md`` lists every setting's flag and variable.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from swserve.cli import make_command
from swserve.config import SETTINGS
from swserve.control.cli import COMMANDS_BY_NAME

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])(?![\w-])")
ENV = re.compile(r"\bSWSERVE_[A-Z0-9_]+\b")
CODE_SPAN = re.compile(r"`([^`]+)`")
OTHER_SERVERS = ("gunicorn", "uvicorn", "granian", "hypercorn")

# Flags of other programs named in prose, outside a table or code block.
FOREIGN: dict[str, set[str]] = {
    "benchmarks.md": {
        "--backpressure",
        "--http1-header-read-timeout",
        "--timeout-keep-alive",
        "--worker-connections",
        "--limit-max-requests",
        "--no-pin",
    },
    "docker.md": {"--build-arg", "--no-healthcheck", "--cpus", "--read-only", "--tmpfs"},
    "deployment.md": {"--cpus", "--init", "--stop-timeout", "--format"},
    "logging.md": {"--capture-output"},
    "migrating.md": {"--preload", "--dirty-app"},
    "architecture.md": {"--restart"},  # docker run's
    "signals.md": {"--time"},
}


def spans(text: str, foreign: set[str]) -> list[str]:
    """The flags in the code spans of ``text`` that are given as swserve's."""
    out = []
    for span in CODE_SPAN.findall(text):
        first = span.split()[0] if span.split() else ""
        if " " in span.strip() and not first.startswith("-") and "swserve" not in first:
            continue  # another program's command line
        out += [f for f in FLAG.findall(span) if f not in foreign]
    return out


def _params(command: click.Command) -> list[click.Parameter]:
    params = list(command.params)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            params += _params(sub)
    return params


def known_flags() -> set[str]:
    flags: set[str] = {"--help", "--version"}
    for command in [make_command(), *COMMANDS_BY_NAME.values()]:
        for param in _params(command):
            flags.update(param.opts)
            flags.update(param.secondary_opts)
    return {f for f in flags if f.startswith("--")}


# variables swserve sets for its own processes, not settings (docs name them to explain)
INTERNAL_ENVS = {"SWSERVE_PUSH"}  # the reactors' sockets, for processes a worker starts
# read by setup.py and tests/unit/test_build.py when swserve is built, not settings of a server
BUILD_ENVS = {"SWSERVE_PURE_PYTHON", "SWSERVE_COMPILE", "SWSERVE_EXPECT_BUILD"}


def known_envs() -> set[str]:
    return {s.env for s in SETTINGS if s.env} | INTERNAL_ENVS | BUILD_ENVS


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def named(path: Path) -> list[tuple[int, str]]:
    """(line number, flag or variable) for each one the page gives as swserve's."""
    found: list[tuple[int, str]] = []
    foreign = FOREIGN.get(path.name, set())
    lines = path.read_text().splitlines()
    in_code = False
    command_is_swserve = False
    columns: list[int] | None = None  # the table columns to check (None: all)
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            command_is_swserve = False
            continue
        if in_code:
            if not command_is_swserve:
                words = re.sub(r"^(\$ |# )", "", stripped).split()
                # skip VAR=value prefixes and sudo/exec
                while words and ("=" in words[0] or words[0] in ("sudo", "exec")):
                    words = words[1:]
                head = " ".join(words[:3])
                command_is_swserve = head.startswith(("swserve", "python -m swserve")) or (
                    head.startswith(("python3 -m swserve", ".venv/bin/swserve"))
                )
            if command_is_swserve:
                found += [(number, f) for f in FLAG.findall(line.split(" #")[0])]
            found += [(number, e) for e in ENV.findall(line)]
            if not stripped.endswith("\\"):
                command_is_swserve = False
            continue
        if stripped.startswith("|"):
            cells = _cells(stripped)
            if (
                columns is None
                and number < len(lines)
                and set(lines[number].strip()) <= set("|-: ")
            ):
                # a header row: which columns are swserve's?
                lowered = [c.lower() for c in cells]
                if any(any(o in c for o in OTHER_SERVERS) for c in lowered):
                    columns = [i for i, c in enumerate(lowered) if "swserve" in c]
                else:
                    columns = list(range(len(cells)))
                continue
            if columns is None:
                columns = list(range(len(cells)))
            for i in columns:
                if i < len(cells):
                    found += [(number, f) for f in spans(cells[i], foreign)]
                    found += [(number, e) for e in ENV.findall(cells[i])]
            continue
        columns = None
        found += [(number, f) for f in spans(line, foreign)]
        found += [(number, e) for e in ENV.findall(line)]
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_name_only_settings_that_exist(path: Path) -> None:
    flags, envs = known_flags(), known_envs()
    unknown = [
        f"{path.name}:{number}: {name}"
        for number, name in named(path)
        if name not in (envs if name.startswith("SWSERVE_") else flags)
    ]
    assert not unknown, "no such setting:\n" + "\n".join(unknown)


def test_the_checker_sees_a_made_up_flag(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Use `--no-such-flag` or SWSERVE_NO_SUCH.\n\n"
        "| gunicorn | swserve |\n|---|---|\n| `--preload` | `--made-up` |\n\n"
        "```\nswserve app:app --bind x \\\n  --also-made-up\ndocker run --rm x\n```\n"
    )
    assert [name for _, name in named(page)] == [
        "--no-such-flag",
        "SWSERVE_NO_SUCH",
        "--made-up",
        "--bind",
        "--also-made-up",
    ]


def test_settings_page_lists_every_setting() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for s in SETTINGS:
        for flag in s.flags:
            assert f"`{flag}" in text, flag
        if s.env:
            assert f"`{s.env}`" in text, s.env


def test_foreign_flags_are_really_not_swserve_flags() -> None:
    """An entry in FOREIGN that is a swserve flag would hide a mistake."""
    flags = known_flags()
    clash = {f for names in FOREIGN.values() for f in names} & flags
    assert not clash, clash
