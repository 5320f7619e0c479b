"""--chroot DIR: workers chroot after loading the app; the master and manager do not (#19).

Needs root (CAP_SYS_CHROOT): skipped otherwise.  The app is imported before the
chroot, so the jail needs nothing but a marker file and tmp/ (the spool of large
request bodies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from swserve.process.chroot import can_chroot
from tests.integration.conftest import Server, Starter, swserve_args

pytestmark = [
    pytest.mark.modes("process", "base"),
    pytest.mark.skipif(not can_chroot(), reason="--chroot needs root (CAP_SYS_CHROOT)"),
]


@pytest.fixture
def jail() -> Iterator[Path]:
    # not under tmp_path: its parents are 0700, and --user nobody must reach DIR/tmp
    root = Path(tempfile.mkdtemp(prefix="swserve-jail-"))
    root.chmod(0o755)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)  # the master and workers may run as nobody
    (root / "inside.txt").write_text("in the jail")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def processes(server: Server) -> dict[str, list[int]]:
    """ "master" / "manager" / "worker" → pids (by process title)."""
    out: dict[str, list[int]] = {}
    for pid, title in server.children().items():
        if title.startswith("swserve: "):
            out.setdefault(title.split()[1], []).append(pid)
    return out


def root_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/root")


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


@pytest.mark.parametrize("app", ["chroot_app:app", "chroot_app:asgi_app"])
def test_workers_are_chrooted_and_serve(serve: Starter, jail: Path, app: str) -> None:
    server = serve(app, "--chroot", str(jail))
    procs = processes(server)
    assert len(procs["worker"]) == 2
    for pid in procs["worker"]:
        assert root_of(pid) == str(jail)
    for pid in procs["master"] + procs.get("manager", []):
        assert root_of(pid) == "/"  # not chrooted
    with httpx.Client(base_url=server.url, timeout=20) as client:
        assert client.get("/ls").text.splitlines() == ["inside.txt", "tmp"]
        assert int(client.get("/").text) in procs["worker"]
        big = b"x" * (3 * 1024 * 1024)  # over --body-spool-size (1 MiB): spooled in DIR/tmp
        assert client.post("/len", content=big).text == str(len(big))
    assert os.listdir(jail / "tmp") == []  # the spooled body's file is gone


def test_with_user_the_workers_drop_after_the_chroot(serve: Starter, jail: Path, mode: str) -> None:
    server = serve("chroot_app:app", "--chroot", str(jail), "--user", "nobody")
    procs = processes(server)
    nobody = 65534
    for pid in procs["worker"]:
        assert root_of(pid) == str(jail)
        assert uid_of(pid) == nobody
    for pid in procs["master"]:
        assert root_of(pid) == "/"
        assert uid_of(pid) == nobody  # the master reads the network: never root
    if mode == "process":
        (manager,) = procs["manager"]
        assert root_of(manager) == "/"
        assert uid_of(manager) == 0  # it forks workers that must still chroot
    with httpx.Client(base_url=server.url, timeout=20) as client:
        assert client.get("/ls").text.splitlines() == ["inside.txt", "tmp"]
        assert client.post("/len", content=b"y" * (2 * 1024 * 1024)).text == str(2 * 1024 * 1024)


def start_fails(mode: str, *args: str, prefix: tuple[str, ...] = ()) -> str:
    """Run swserve (under ``prefix``, e.g. setpriv) expecting exit code 1; its stderr."""
    argv = [*prefix, *swserve_args("chroot_app:app", *args, mode=mode)]
    # without coverage's hook: a process that dropped to --user cannot write its data
    # file, and coverage's own traceback about that is not swserve's
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_an_unusable_directory_is_one_line_at_start_up(mode: str, jail: Path) -> None:
    missing = jail / "nowhere"
    out = start_fails(mode, "--chroot", str(missing))
    assert f"--chroot {missing}: No such file or directory" in out
    out = start_fails(mode, "--chroot", str(jail / "inside.txt"))
    assert "not a directory" in out
    (jail / "tmp").chmod(0o755)  # root's: the master, as nobody, could not spool there
    out = start_fails(mode, "--chroot", str(jail), "--user", "nobody")
    assert "cannot write request-body spool files into" in out
    assert "as uid 65534" in out
    shutil.rmtree(jail / "tmp")
    out = start_fails(mode, "--chroot", str(jail))
    assert "tmp is missing" in out
    assert "--body-spool-size 0" in out


def test_no_tmp_is_fine_without_spooling(serve: Starter, jail: Path) -> None:
    shutil.rmtree(jail / "tmp")
    server = serve("chroot_app:app", "--chroot", str(jail), "--body-spool-size", "0")
    assert httpx.get(server.url + "/ls", timeout=20).text == "inside.txt"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_without_the_privilege_it_is_one_line_at_start_up(mode: str, jail: Path) -> None:
    # root without CAP_SYS_CHROOT (as in a container that drops it)
    out = start_fails(mode, "--chroot", str(jail), prefix=("setpriv", "--bounding-set=-sys_chroot"))
    assert "--chroot needs root (CAP_SYS_CHROOT)" in out
    assert "Traceback" not in out
    assert len([line for line in out.splitlines() if line.strip()]) == 1, out


def test_static_files_with_chroot(serve: Starter, jail: Path, mode: str, tmp_path: Path) -> None:
    """Process mode: the reactor (never chrooted) serves --static from the real filesystem.
    Base mode, where the chrooted workers would have to: one line at start-up, exit 2 (a
    usage error, like every bad combination of settings)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "app.css").write_text("body {}")
    static = ("--static", f"/static={site}")
    if mode == "base":
        server = serve("chroot_app:app", "--chroot", str(jail), *static, wait=False)
        server.expected_exit = 2
        assert server.wait_exit(30) == 2
        stderr = "\n".join(server.stderr)
        assert "--static with --chroot needs process mode" in stderr
        assert "Traceback" not in stderr
        return
    server = serve("chroot_app:app", "--chroot", str(jail), *static)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        r = client.get("/static/app.css")
        assert (r.status_code, r.text) == (200, "body {}")
        assert client.get("/ls").text.splitlines() == ["inside.txt", "tmp"]  # the app: jailed
