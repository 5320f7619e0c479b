"""The anchors venv (uvicorn, gunicorn, granian and an editable swserve)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loadtests.run.common import (
    ANCHOR_REQUIREMENTS,
    HERE,
    INSTALL_STAMP,
    PIP_TIMEOUT_S,
    REPO_ROOT,
    REPORTED_PACKAGES,
    VENV_BIN,
    VENV_CREATE_TIMEOUT_S,
    VENV_DIR,
    log,
    tail,
)

# ---------------------------------------------------------------------------------------------
# The anchors venv
# ---------------------------------------------------------------------------------------------


def pip_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
        cwd=REPO_ROOT,
    )


def compile_checkout() -> None:
    """Byte-compile swserve and the benchmark apps, as pip compiles the anchors it installs.

    swserve runs from this checkout (an editable install).  Without ``.pyc`` files, with
    PYTHONDONTWRITEBYTECODE set or a read-only tree, every launch compiles ~10,000 lines of
    source again: ~95 ms of the start-up scenario, a cost no user installing a wheel pays.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "swserve"), str(HERE / "apps")],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def ensure_venv(*, no_install: bool, with_swserve: bool) -> str:
    """Create the anchors venv once, install the anchors once, and swserve (editable) each run.

    With ``no_install`` an existing venv is used as it is; without ``with_swserve`` (no swserve
    variant selected) swserve is not reinstalled.

    Returns:
        "" when the venv has a ``swserve`` command, else why not, so that swserve points are
        recorded as failed while the anchors still run.

    Raises:
        SystemExit: the venv or the anchors could not be installed.
    """
    swserve = VENV_BIN / "swserve"
    if not (VENV_BIN / "python").exists():
        log(f"creating {VENV_DIR} ...")
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV_DIR)],
            check=True,
            timeout=VENV_CREATE_TIMEOUT_S,
        )
    elif no_install:
        return "" if swserve.exists() else f"{swserve} not found (and --no-install was given)"
    wanted = "\n".join(ANCHOR_REQUIREMENTS)
    if not INSTALL_STAMP.exists() or INSTALL_STAMP.read_text() != wanted:
        log(f"installing {', '.join(ANCHOR_REQUIREMENTS)} into {VENV_DIR} ...")
        result = pip_install(*ANCHOR_REQUIREMENTS)
        if result.returncode != 0:
            raise SystemExit(f"pip could not install the anchors:\n{tail(result.stderr)}")
        INSTALL_STAMP.write_text(wanted)
    if not with_swserve:
        return ""
    log(f"installing swserve from {REPO_ROOT} (editable) ...")
    result = pip_install("-e", str(REPO_ROOT))
    if result.returncode == 0:
        return ""
    failure = f"pip install -e {REPO_ROOT} failed:\n{tail(result.stderr or result.stdout, 12)}"
    if swserve.exists():  # an earlier editable install still runs the current source tree
        log(f"warning: {failure}\nusing the swserve already installed in {VENV_DIR}")
        return ""
    log(failure)
    return failure


def installed_versions() -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def version(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({name: version(name) for name in sys.argv[1:]}))\n"
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code, *REPORTED_PACKAGES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str | None] = json.loads(result.stdout)
    return versions


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    env["PYTHONPATH"] = str(REPO_ROOT)  # every server imports loadtests.apps.* from the repo
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # the "Listening on" line must reach the log file at once
    return env
