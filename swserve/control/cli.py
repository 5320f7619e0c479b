"""``swserve ctl`` and ``swserve top``: the command-line clients of the control socket.

``swserve APP`` stays the server's command (swserve/cli.py); its ``main``
hands ``ctl`` and ``top`` here.  Every failure is one line on stderr and a
non-zero exit: 1 for a refused or failed command, 2 for a usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from swserve.control import paths, render
from swserve.control.client import Client
from swserve.control.protocol import COMMANDS, ControlError, parse_scale
from swserve.errors import ConfigError

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"swserve: error: {message}", err=True)
    sys.exit(code)


def _socket(control_socket: str | None, pid_file: str | None) -> Path:
    try:
        return paths.find(control_socket or "", pid_file or "")
    except ConfigError as exc:
        _fail(str(exc))


def _where(f: Any) -> Any:
    f = click.option("--control-socket", metavar="PATH", help="The server's control socket.")(f)
    return click.option(
        "--pid-file", metavar="PATH", help="The server's --pid-file: its socket is beside it."
    )(f)


@click.group(
    "ctl",
    context_settings=_SETTINGS,
    help="Ask a running server (found by --pid-file, --control-socket, or as this user's only one).",
)
@_where
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON result.")
@click.pass_context
def ctl(
    ctx: click.Context, control_socket: str | None, pid_file: str | None, as_json: bool
) -> None:
    ctx.obj = (control_socket, pid_file, as_json)


def _call(ctx: click.Context, cmd: str, **args: Any) -> None:
    control_socket, pid_file, as_json = ctx.obj
    try:
        with Client(_socket(control_socket, pid_file)) as client:
            result = client.call(cmd, **args)
    except ControlError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for line in render.ctl_text(cmd, result):
            click.echo(line)


def _simple(name: str) -> None:
    @ctl.command(name, help=COMMANDS[name].help)
    @click.pass_context
    def command(ctx: click.Context) -> None:
        _call(ctx, name)


for _name in ("stats", "workers", "processes", "sessions"):
    _simple(_name)


@ctl.command("reload", help=COMMANDS["reload"].help)
@click.option("--task-workers", is_flag=True, help="Reload the task workers instead.")
@click.pass_context
def reload(ctx: click.Context, task_workers: bool) -> None:
    _call(ctx, "reload", **({"task_workers": True} if task_workers else {}))


# "-1" is an argument here, not an option
@ctl.command(
    "scale",
    help=COMMANDS["scale"].help,
    context_settings={"ignore_unknown_options": True},
)
@click.argument("count", metavar="N|+K|-K")
@click.pass_context
def scale(ctx: click.Context, count: str) -> None:
    try:
        args = parse_scale(count)
    except ControlError as exc:
        raise click.UsageError(str(exc)) from None
    _call(ctx, "scale", **args)


@ctl.command("recycle", help=COMMANDS["recycle"].help)
@click.argument("slot", type=int)
@click.pass_context
def recycle(ctx: click.Context, slot: int) -> None:
    _call(ctx, "recycle", slot=slot)


@ctl.command("slowlog", help=COMMANDS["slowlog"].help)
@click.argument("slot", type=int)
@click.pass_context
def slowlog(ctx: click.Context, slot: int) -> None:
    _call(ctx, "slowlog", slot=slot)


@click.command("top", context_settings=_SETTINGS, help="A live view of a running server.")
@_where
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes."
)
@click.option(
    "--once",
    is_flag=True,
    help="Print one plain table and exit (also when stdout is not a terminal).",
)
@click.option(
    "--slowlog-timeout",
    type=float,
    default=0.0,
    help="A request running this long marks its worker stuck (default: the server's "
    f"--slowlog-timeout, or {render.DEFAULT_STUCK:g}s).",
)
@click.option(
    "--sort", type=click.Choice(list(render.SORTS.values())), default="cpu", show_default=True
)
def top(
    control_socket: str | None,
    pid_file: str | None,
    interval: float,
    once: bool,
    slowlog_timeout: float,
    sort: str,
) -> None:
    from swserve.control import top as top_view

    if interval <= 0:
        raise click.UsageError("--interval must be above 0")
    path = _socket(control_socket, pid_file)
    view = render.View(sort=sort, stuck_after=slowlog_timeout)
    try:
        if once or not sys.stdout.isatty():
            sys.stdout.write(top_view.once(path, interval, view))
        else:
            top_view.run(path, interval, view)
    except ControlError as exc:
        _fail(str(exc))


COMMANDS_BY_NAME: dict[str, click.Command] = {"ctl": ctl, "top": top}


def main(name: str, argv: list[str]) -> NoReturn:
    """Run ``swserve ctl …`` or ``swserve top …``; click's errors become one line."""
    command = COMMANDS_BY_NAME[name]
    if name == "ctl" and not argv:
        argv = ["--help"]  # the commands, rather than an error about a missing one
    try:
        command.main(argv, prog_name=f"swserve {name}", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    sys.exit(0)
