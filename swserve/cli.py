"""The ``swserve`` command, generated from ``config.SETTINGS``.

argv → Config, then hand over to the master.  No runtime logic lives here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from swserve import __version__
from swserve.config import SETTINGS, Config, Setting, build_config, parse_size, problems
from swserve.errors import ConfigError
from swserve.settings.sources import merge


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


_CLICK_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "list": str}


def _param(s: Setting) -> click.Parameter:
    if s.kind == "argument":
        return click.Argument([s.name], required=False, default=s.default)
    decls = [*s.flags, s.name]
    common: dict[str, Any] = {"help": s.help, "show_default": False, "default": None}
    if s.kind == "bool":
        long = s.flags[0][2:]
        return click.Option([f"--{long}/--no-{long}", s.name], help=s.help, default=None)
    if s.kind == "choice":
        return click.Option(decls, type=click.Choice(s.choices), **common)
    if s.kind == "size":
        return click.Option(decls, type=str, metavar="SIZE", callback=_parse_size, **common)
    if s.kind == "list":
        return click.Option(decls, multiple=True, metavar=s.metavar or None, help=s.help)
    return click.Option(decls, type=_CLICK_TYPES[s.kind], metavar=s.metavar or None, **common)


def _values(params: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the user gave: None (or an empty tuple) means "not given"."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None or value == ():
            continue
        out[name] = tuple(value) if isinstance(value, list | tuple) else value
    return out


def _run(config_file: str | None, print_config: bool, check_config: bool, **params: Any) -> None:
    cli = _values(params)
    if "bind" in cli and ("host" in cli or "port" in cli):
        raise click.UsageError("give either --bind or --host/--port, not both")
    try:
        values, origin, found = merge(cli, os.environ, config_file, Path.cwd())
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if "bind" in values:  # an explicit bind wins over host/port from a lower source
        values.pop("host", None)
        values.pop("port", None)
    found += problems(values)
    if check_config:
        for line in found:
            click.echo(line, err=True)
        if not found:
            click.echo("configuration ok")
        sys.exit(1 if found else 0)
    if found:
        raise click.UsageError(found[0])
    config = build_config(values)
    if print_config:
        _print_config(config, origin)
        sys.exit(0)
    serve(config)


def _print_config(config: Config, origin: dict[str, str]) -> None:
    """The effective settings and where each came from."""
    width = max(len(s.name) for s in SETTINGS)
    for s in SETTINGS:
        value = getattr(config, s.name)
        click.echo(
            f"{s.name.replace('_', '-'):<{width}}  {value!r:<28}  {origin.get(s.name, 'default')}"
        )


def serve(config: Config) -> None:
    from swserve.master.main import run

    sys.exit(run(config))


def make_command() -> click.Command:
    params = [_param(s) for s in SETTINGS] + [
        click.Option(
            ["--config", "config_file"],
            metavar="PATH",
            help="A TOML file of settings (top level or [tool.swserve]); default: "
            "[tool.swserve] in ./pyproject.toml. Precedence: command line > environment "
            "(SWSERVE_<NAME>, PORT, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS) > file > default.",
        ),
        click.Option(
            ["--print-config"], is_flag=True, help="Show the effective settings and their sources."
        ),
        click.Option(
            ["--check-config"],
            is_flag=True,
            help="Validate the settings from every source: one line per problem, exit 0 or 1.",
        ),
    ]
    command = click.Command(
        "swserve",
        callback=_run,
        params=params,
        help="Serve a WSGI or ASGI application.  APP is module:attribute.  "
        "A running server: swserve ctl --help, swserve top --help.",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Show the version and the build (compiled or pure Python), then exit.",
    )(command)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``swserve, version 0.1.0 (compiled (mypyc, 14 modules))``: which build runs."""
    if not value or ctx.resilient_parsing:
        return
    from swserve.build_info import describe

    click.echo(f"swserve, version {__version__} ({describe()})")
    ctx.exit()


# the subcommands for a running server (swserve/control/cli.py); an app named so
# is still served when given as module:attribute
SUBCOMMANDS = ("ctl", "top")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        from swserve.control.cli import main as control_main

        control_main(sys.argv[1], sys.argv[2:])
    make_command()(prog_name="swserve")
