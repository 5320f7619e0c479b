"""Settings from the environment and TOML files, and their precedence (nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from swserve import cli
from swserve.config import Config
from tests.unit.test_config import clean_env


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    got: list[Config] = []
    monkeypatch.setattr(cli, "serve", got.append)
    return got


def run(
    *args: str, env: dict[str, str | None] | None = None, cwd: Path | None = None
) -> tuple[int, str]:
    runner = CliRunner()
    if cwd is None:
        result = runner.invoke(cli.make_command(), list(args), env=env or clean_env())
    else:
        with runner.isolated_filesystem(temp_dir=cwd):
            result = runner.invoke(cli.make_command(), list(args), env=env or clean_env())
    return result.exit_code, result.output


def test_env_var_for_every_setting(captured: list[Config]) -> None:
    env = clean_env(SWSERVE_WORKERS="5", SWSERVE_MAX_BODY_SIZE="2MiB", SWSERVE_FACTORY="true",
                    SWSERVE_BIND="127.0.0.1:0,unix:/tmp/s.sock", SWSERVE_DISPATCH="fd")  # fmt: skip
    assert run(env=env)[0] == 0
    c = captured[0]
    assert (c.workers, c.max_body_size, c.factory, c.dispatch) == (5, 2 << 20, True, "fd")
    assert c.bind == ("127.0.0.1:0", "unix:/tmp/s.sock")


def test_port_and_web_concurrency_shorthands(captured: list[Config]) -> None:
    assert run(env=clean_env(PORT="9001", WEB_CONCURRENCY="3"))[0] == 0
    assert captured[0].binds == ("127.0.0.1:9001",)
    assert captured[0].workers == 3
    # the SWSERVE_ names win over the shorthands
    assert run(env=clean_env(WEB_CONCURRENCY="3", SWSERVE_WORKERS="7"))[0] == 0
    assert captured[1].workers == 7


def test_precedence_cli_over_env_over_file_over_default(
    captured: list[Config], tmp_path: Path
) -> None:
    conf = tmp_path / "swserve.toml"
    conf.write_text('workers = 2\nthreads = 3\nkeep-alive = 9.5\nmax_body_size = "1MiB"\n')
    env = clean_env(SWSERVE_THREADS="4", SWSERVE_KEEP_ALIVE="8")
    assert run("--config", str(conf), "--keep-alive", "7", env=env)[0] == 0
    c = captured[0]
    assert c.workers == 2  # file
    assert c.threads == 4  # env over file
    assert c.keep_alive == 7.0  # command line over env and file
    assert c.max_body_size == 1 << 20  # file, size string
    assert c.graceful_timeout == 30.0  # default


def test_pyproject_tool_table_is_found_in_the_working_directory(
    captured: list[Config], tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.swserve]\nworkers = 6\n'
    )
    runner = CliRunner()
    import os

    old = Path.cwd()
    os.chdir(project)
    try:
        result = runner.invoke(cli.make_command(), [], env=clean_env())
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    assert captured[0].workers == 6


def test_unknown_key_names_the_closest_setting(tmp_path: Path) -> None:
    conf = tmp_path / "swserve.toml"
    conf.write_text("wokers = 2\nmax-request = 5\n")
    code, out = run("--config", str(conf), "--check-config")
    assert code == 1
    assert "unknown setting 'wokers' (did you mean 'workers'?)" in out
    assert "unknown setting 'max-request' (did you mean 'max-requests'?)" in out


def test_check_config_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    conf = tmp_path / "swserve.toml"
    conf.write_text('workers = 0\ndispatch = "random"\n')
    code, out = run("--config", str(conf), "--check-config", env=clean_env(SWSERVE_THREADS="many"))
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 3, out
    assert any("--dispatch: unknown dispatch mode 'random'" in line for line in lines)
    assert any("SWSERVE_THREADS" in line and "whole number" in line for line in lines)
    assert any("--workers must be at least 1" in line for line in lines)


def test_check_config_ok(tmp_path: Path) -> None:
    conf = tmp_path / "swserve.toml"
    conf.write_text("workers = 2\n")
    assert run("--config", str(conf), "--check-config") == (0, "configuration ok\n")


def test_print_config_shows_values_and_sources(tmp_path: Path) -> None:
    conf = tmp_path / "swserve.toml"
    conf.write_text("threads = 3\n")
    code, out = run(
        "--config", str(conf), "--print-config", "-w", "4", env=clean_env(SWSERVE_KEEP_ALIVE="2")
    )
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert rows["workers"].endswith("command line")
    assert rows["threads"].endswith(f"file {conf}")
    assert rows["keep-alive"].endswith("env SWSERVE_KEEP_ALIVE")
    assert rows["graceful-timeout"].endswith("default")


def test_bad_values_from_env_or_file_are_usage_errors(tmp_path: Path) -> None:
    code, out = run(env=clean_env(SWSERVE_WORKERS="lots"))
    assert code == 2
    assert "SWSERVE_WORKERS" in out
    assert "Traceback" not in out
    conf = tmp_path / "broken.toml"
    conf.write_text("workers = [")
    code, out = run("--config", str(conf))
    assert code == 2
    assert "not valid TOML" in out
    code, out = run("--config", str(tmp_path / "missing.toml"))
    assert code == 2
    assert "missing.toml" in out


def test_bind_from_a_higher_source_wins_over_port(captured: list[Config]) -> None:
    assert run("--bind", "127.0.0.1:0", env=clean_env(PORT="9001"))[0] == 0
    assert captured[0].binds == ("127.0.0.1:0",)


def test_forwarded_allow_ips_shorthand(captured: list[Config]) -> None:
    # gunicorn's and uvicorn's variable, comma-separated as they take it
    assert run(env=clean_env(FORWARDED_ALLOW_IPS="10.0.0.1, 10.0.0.0/8,unix"))[0] == 0
    assert captured[0].forwarded_allow_ips == ("10.0.0.1", "10.0.0.0/8", "unix")
    assert run(env=clean_env(FORWARDED_ALLOW_IPS="*", SWSERVE_FORWARDED_ALLOW_IPS="unix"))[0] == 0
    assert captured[1].forwarded_allow_ips == ("unix",)  # the SWSERVE_ name wins
    code, output = run(env=clean_env(FORWARDED_ALLOW_IPS="10.0.0.1,nonsense"))
    assert code == 2
    assert "'nonsense' is not an IP address, a CIDR network, * or unix" in output
    assert "Traceback" not in output
