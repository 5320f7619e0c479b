from __future__ import annotations

import dataclasses
import os

import pytest
from click.testing import CliRunner

from swserve import cli
from swserve.config import SETTINGS, Config, build_config, parse_bind, parse_size
from swserve.errors import ConfigError


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Replace the server start with a recorder: these tests start nothing."""
    got: list[Config] = []
    monkeypatch.setattr(cli, "serve", got.append)
    return got


def clean_env(**extra: str) -> dict[str, str | None]:
    """Unset every variable swserve reads, then set ``extra``."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("SWSERVE_")}
    env.update(PORT=None, WEB_CONCURRENCY=None, FORWARDED_ALLOW_IPS=None)
    env.update(extra)
    return env


def invoke(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli.make_command(), list(args), env=env or clean_env())
    return result.exit_code, result.output


def test_every_config_field_is_a_setting() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Config)]
    for s in SETTINGS:
        assert s.help, s.name
        assert s.section, s.name


def test_defaults(captured: list[Config]) -> None:
    code, out = invoke()
    assert code == 0, out
    (config,) = captured
    assert config.app == "swserve.demo:app"
    assert config.binds == ("127.0.0.1:8000",)
    assert config.workers == len(os.sched_getaffinity(0))
    assert config.threads == 1
    assert config.dispatch == "idle"
    assert config.keep_alive == 5.0
    assert config.max_body_size == 16 * 1024 * 1024
    assert config.graceful_timeout == 30.0


def test_flags_reach_the_config(captured: list[Config]) -> None:
    code, out = invoke(
        "myapp:make", "--factory", "-b", "127.0.0.1:0", "--bind", "unix:/tmp/x.sock", "-w", "3",
        "--threads", "4", "--interface", "asgi", "--http", "h11", "--dispatch", "fd",
        "--keep-alive", "2.5", "--max-body-size", "1MiB", "--graceful-timeout", "7",
        "--log-level", "debug", "--app-dir", "/srv", "--lifespan", "off",
    )  # fmt: skip
    assert code == 0, out
    c = captured[0]
    assert (c.app, c.factory, c.bind, c.workers, c.threads) == (
        "myapp:make", True, ("127.0.0.1:0", "unix:/tmp/x.sock"), 3, 4,
    )  # fmt: skip
    assert (c.interface, c.http, c.dispatch, c.keep_alive) == ("asgi", "h11", "fd", 2.5)
    assert (c.max_body_size, c.graceful_timeout, c.log_level, c.app_dir, c.lifespan) == (
        1024 * 1024, 7.0, "debug", "/srv", "off",
    )  # fmt: skip


def test_host_port_shorthand(captured: list[Config]) -> None:
    assert invoke("--host", "::1", "--port", "9000")[0] == 0
    assert captured[0].binds == ("[::1]:9000",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "many"], "is not a valid integer"),
        (["--dispatch", "random"], "unknown dispatch mode 'random': expected idle"),
        (["--bind", "nonsense"], "is not HOST:PORT"),
        (["--bind", "127.0.0.1:0", "--port", "80"], "either --bind or --host/--port"),
        (["--max-body-size", "lots"], "is not a size"),
        (["--port", "70000"], "between 0 and 65535"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_bad_values_are_usage_errors(captured: list[Config], args: list[str], message: str) -> None:
    code, out = invoke(*args)
    assert code == 2
    assert message in out
    assert "Traceback" not in out
    assert not captured


def test_version() -> None:
    code, out = invoke("--version")
    assert code == 0
    assert out.startswith("swserve, version ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1048576), ("64k", 65536), ("64KiB", 65536), ("16MiB", 16 << 20), ("1g", 1 << 30)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_bind() -> None:
    assert parse_bind("0.0.0.0:80").port == 80
    assert parse_bind("[::1]:81").host == "::1"
    assert parse_bind(":82").host == "0.0.0.0"
    assert parse_bind("unix:/run/a.sock").path == "/run/a.sock"
    for bad in ("unix:", "::1:80", "host", "host:port", "h:99999"):
        with pytest.raises(ConfigError):
            parse_bind(bad)


def test_build_config_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        build_config({"wokers": 2})


def test_settings_page_is_current() -> None:
    from pathlib import Path

    from swserve.settings import doc as settings_doc

    page = Path(__file__).parents[2] / "docs" / "settings.md"
    assert page.read_text() == settings_doc.render(), (
        "docs/settings.md is stale: run python -m swserve.settings.doc > docs/settings.md"
    )


def test_reactors_apply_to_process_mode_only() -> None:
    from swserve.config import problems

    assert problems({"reactors": 2, "mode": "process"}) == []
    assert any(
        "--reactors applies to process mode" in p for p in problems({"reactors": 2, "mode": "base"})
    )
    assert problems({"reactors": 65})  # out of range


def test_reactor_count_is_derived_from_workers_and_cores() -> None:
    import dataclasses
    import os

    from swserve.config import Config
    from swserve.reactor.process import reactor_count

    cores = len(os.sched_getaffinity(0))
    assert reactor_count(dataclasses.replace(Config(), reactors=3)) == 3
    assert reactor_count(dataclasses.replace(Config(), mode="base", reactors=0)) == 1
    derived = reactor_count(dataclasses.replace(Config(), workers=64, reactors=0))
    assert derived == max(1, min(cores // 2, 16))
    assert reactor_count(dataclasses.replace(Config(), workers=1, reactors=0)) == 1


def test_websocket_drains_and_the_kill_deadlines() -> None:
    # the default moves no deadline: sessions close in time for the ones HTTP has
    config = Config()
    assert (config.ws_retire_drain, config.retire_wait) == (25.0, 30.0)
    assert (config.ws_stop_drain, config.stop_wait) == (29.0, 30.0)
    config = build_config({"max_wait_time": 1.0})
    assert (config.ws_retire_drain, config.retire_wait) == (0.0, 1.0)
    # an explicit drain moves the deadlines instead: no worker is killed under its sessions
    config = build_config({"ws_drain_timeout": 2.0, "max_wait_time": 10.0})
    assert (config.ws_retire_drain, config.retire_wait, config.stop_wait) == (2.0, 10.0, 30.0)
    config = build_config({"ws_drain_timeout": 60.0, "max_wait_time": 10.0})
    assert (config.retire_wait, config.stop_wait) == (65.0, 61.0)
    config = build_config({"ws": "none", "ws_drain_timeout": 60.0, "max_wait_time": 10.0})
    assert (config.retire_wait, config.stop_wait) == (10.0, 30.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ws-max-size", "0"], "--ws-max-size must be at least 1"),
        (["--ws-ping-timeout", "0"], "--ws-ping-timeout must be positive"),
        (["--ws-drain-timeout", "-3"], "--ws-drain-timeout must not be negative"),
        (["--ws", "wsproto"], "wsproto"),
    ],
)
def test_websocket_settings_are_checked(
    captured: list[Config], args: list[str], message: str
) -> None:
    code, out = invoke(*args)
    assert code == 2
    assert message in out
    assert not captured


def test_static_with_chroot_needs_process_mode() -> None:
    from swserve.config import problems

    values = {"static": ("/s=/srv/static",), "chroot": "/srv/jail", "mode": "base"}
    assert any("--static with --chroot needs process mode" in p for p in problems(values))
    assert not any("--chroot" in p for p in problems({**values, "mode": "process"}))
