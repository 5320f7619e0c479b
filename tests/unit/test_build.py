"""The two builds (docs/compiled.md): setup.py's choice, the pure fallback, --version.

CI installs the compiled build in place and sets ``SWSERVE_EXPECT_BUILD=compiled``, so that a
compile that silently fell back to pure Python fails the run instead of testing the wrong build.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from swserve import __version__, build_info, cli

ROOT = Path(__file__).parents[2]


def load_setup() -> ModuleType:
    """setup.py as a module: its functions, without running setup() (it is not __main__)."""
    spec = importlib.util.spec_from_file_location("swserve_setup", ROOT / "setup.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_names_the_build() -> None:
    result = CliRunner().invoke(cli.make_command(), ["--version"])
    assert result.exit_code == 0
    assert result.output == f"swserve, version {__version__} ({build_info.describe()})\n"


def test_compiled_modules_are_the_extension_modules() -> None:
    compiled = set(build_info.compiled_modules())
    for name in build_info.COMPILED:
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.origin is not None
        assert (name in compiled) == (not spec.origin.endswith(".py")), name


def test_the_build_ci_asked_for() -> None:
    expected = os.environ.get("SWSERVE_EXPECT_BUILD")
    if not expected:
        pytest.skip("SWSERVE_EXPECT_BUILD is not set (CI sets it)")
    compiled = build_info.compiled_modules()
    if expected == "compiled":
        assert compiled == list(build_info.COMPILED)
        assert build_info.describe().startswith("compiled (mypyc")
    else:
        assert compiled == []
        assert build_info.describe() == "pure Python"


def test_setup_lists_the_compiled_modules_as_files() -> None:
    setup = load_setup()
    assert tuple(name.replace(".", "/") + ".py" for name in build_info.COMPILED) == setup.COMPILED
    for path in setup.COMPILED:
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize(
    ("argv", "env", "reason"),
    [
        (["setup.py", "bdist_wheel"], {"SWSERVE_PURE_PYTHON": "1"}, "SWSERVE_PURE_PYTHON is set"),
        (["setup.py", "bdist_wheel"], {"CC": "/nonexistent/cc"}, "no C compiler"),
        (["setup.py", "editable_wheel"], {}, "an editable install runs its source"),
        (["setup.py", "editable_wheel"], {"SWSERVE_COMPILE": "1"}, ""),
        (["setup.py", "bdist_wheel"], {"SWSERVE_PURE_PYTHON": "0"}, ""),
    ],
)
def test_why_pure(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], reason: str
) -> None:
    setup = load_setup()
    for name in ("SWSERVE_PURE_PYTHON", "SWSERVE_COMPILE", "CC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", argv)
    if not reason and setup._no_compiler():
        pytest.skip(f"this machine cannot compile: {setup._no_compiler()}")
    assert setup._why_pure().startswith(reason)
    if reason:
        assert setup._why_pure()


def test_metadata_runs_do_not_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip runs setup.py for the requirements and the metadata: mypyc only for a build."""
    setup = load_setup()
    monkeypatch.setattr(sys, "argv", ["setup.py", "egg_info"])
    assert setup._ext_modules() == []


def test_pure_editable_removes_in_place_builds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = load_setup()
    suffix = ".cpython-test.so"
    monkeypatch.setattr(setup.sysconfig, "get_config_var", lambda name: suffix)
    monkeypatch.setattr(setup, "HERE", tmp_path)
    built = tmp_path / setup.COMPILED[0].replace(".py", suffix)
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    group = tmp_path / f"swserve__mypyc{suffix}"
    group.write_bytes(b"")
    source = tmp_path / setup.COMPILED[0]
    source.write_text("")
    setup._remove_in_place_builds()
    assert not built.exists()
    assert not group.exists()
    assert source.exists()
    assert "removed 2 compiled modules" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_no_compiler_builds_a_pure_wheel(tmp_path: Path) -> None:
    """Where no C compiler is, the wheel is the pure-Python source, and the build says so."""
    env = {**os.environ, "CC": "/nonexistent/cc", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("SWSERVE_PURE_PYTHON", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "swserve build: pure Python: no C compiler" in result.stdout + result.stderr
    (wheel,) = tmp_path.glob("swserve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "swserve/apps/wsgi.py" in names
    assert "swserve/py.typed" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))]
