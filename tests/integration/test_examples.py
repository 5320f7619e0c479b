"""The examples/ projects, served the way their READMEs say.

Each README's one command ends in ``swserve APP --workers 2``, run from the
example's directory.  Each test starts exactly that from exactly there: the
only flags added are the fixture's ``--bind 127.0.0.1:0`` (a free port) and
``--app-dir .``, which restores the default that the fixture's own
``--app-dir`` (the test apps) would otherwise replace.  Then it makes real
requests to every route the README shows, and checks that the answers came
from the two workers and that nothing logged a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, Starter

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = httpx.Timeout(20.0)


def _start(serve: Starter, example: str, app: str) -> Server:
    directory = EXAMPLES / example
    # the README's command must name this app: a renamed module breaks both
    assert f"swserve {app} --workers 2" in (directory / "README.md").read_text()
    return serve(app, "--app-dir", ".", workers=2, cwd=directory)


def _worker_pids(server: Server) -> set[int]:
    return {pid for pid, title in server.children().items() if "swserve: worker" in title}


def _no_traceback(server: Server) -> None:
    assert not any("Traceback" in line for line in server.stderr), server.logs()


def test_flask_example(serve: Starter) -> None:
    server = _start(serve, "flask", "app:app")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        # the idle dispatcher takes the next idle worker in turn: both answer
        pids = {client.get("/").json()["pid"] for _ in range(4)}
        assert pids == _worker_pids(server)
        assert len(pids) == 2

        books = client.get("/books")
        assert books.status_code == 200
        assert [b["id"] for b in books.json()["books"]] == [1, 2]

        book = client.get("/books/1")
        assert book.json() == {"id": 1, "title": "The Pragmatic Programmer", "year": 1999}

        missing = client.get("/books/99")
        assert missing.status_code == 404
        assert missing.json() == {"error": "no book 99"}

        echoed = client.post("/echo", json={"hello": "wörld", "n": [1, 2]})
        assert echoed.status_code == 201
        assert echoed.json() == {"received": {"hello": "wörld", "n": [1, 2]}, "client": "127.0.0.1"}

        not_json = client.post("/echo", content=b"plain", headers={"content-type": "text/plain"})
        assert not_json.status_code == 400
        assert "JSON" in not_json.json()["error"]
    _no_traceback(server)


@pytest.mark.parametrize(
    ("app", "interface"),
    [("mysite.wsgi:application", "wsgi"), ("mysite.asgi:application", "asgi")],
)
def test_django_example(serve: Starter, app: str, interface: str) -> None:
    server = _start(serve, "django", app)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.json()["service"] == "django-example"
        assert index.json()["interface"] == interface
        assert index.json()["pid"] in _worker_pids(server)

        book = client.get("/books/2")
        assert book.json() == {"id": 2, "title": "The Definitive Guide to Django", "year": 2009}
        assert client.get("/books/99").status_code == 404

        echoed = client.post("/echo", content=b'{"hello": "world"}')
        assert echoed.status_code == 201
        assert echoed.json() == {"received": {"hello": "world"}, "client": "127.0.0.1"}
        assert client.post("/echo", content=b"{not json").status_code == 400
        assert client.get("/echo").status_code == 405  # require_POST
    _no_traceback(server)


def test_django_static_files(serve: Starter, tmp_path: Path) -> None:
    """The README's static section: collectstatic, then --static serves its output."""
    directory = EXAMPLES / "django"
    readme = (directory / "README.md").read_text()
    assert "--static /static=staticfiles --static-immutable" in readme
    env = {"DJANGO_STATIC_ROOT": str(tmp_path)}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=directory,
        env={**os.environ, **env},
        check=True,
        timeout=60,
    )
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())
    hashed = manifest["paths"]["css/site.css"]
    server = serve(
        "mysite.wsgi:application",
        "--app-dir",
        ".",
        "--static",
        f"/static={tmp_path}",
        "--static-immutable",
        workers=2,
        cwd=directory,
        env=env,
    )
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        css = client.get("/static/" + hashed)
        assert css.status_code == 200
        assert css.content == (directory / "static" / "css" / "site.css").read_bytes()
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert css.headers["cache-control"] == "public, max-age=315360000, immutable"
        plain = client.get("/static/css/site.css")
        assert plain.headers["cache-control"] == "public, max-age=60"
        assert client.get("/static/nope.css").status_code == 404  # Django's own 404
        assert client.get("/").json()["service"] == "django-example"
    _no_traceback(server)


def test_fastapi_example(serve: Starter) -> None:
    server = _start(serve, "fastapi", "main:app")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        index = client.get("/").json()
        assert index["service"] == "fastapi-example"
        assert index["pid"] in _worker_pids(server)
        assert index["lifespan"] == index["pid"]  # lifespan startup ran in that worker

        book = client.get("/books/1")
        assert book.status_code == 200
        assert book.json()["title"] == "Fluent Python"
        assert Decimal(book.json()["price"]) == Decimal("49.90")
        assert client.get("/books/99").status_code == 404

        quote = client.post("/quote", json={"lines": [{"book_id": 1, "quantity": 2}]})
        assert quote.status_code == 200, quote.text
        assert quote.json()["items"] == 2
        assert Decimal(quote.json()["total"]) == Decimal("99.80")

        assert client.post("/quote", json={"lines": []}).status_code == 422
        bad = client.post("/quote", json={"lines": [{"book_id": 1, "quantity": 0}]})
        assert bad.status_code == 422
        assert (
            client.post("/quote", json={"lines": [{"book_id": 7, "quantity": 1}]}).status_code
            == 404
        )
    _no_traceback(server)


def test_tasks_example(serve: Starter) -> None:
    directory = EXAMPLES / "tasks"
    command = "swserve main:app --workers 2 --task-workers 2 --process jobs:consume"
    assert command in (directory / "README.md").read_text()
    for stale in ("queue", "done"):  # left by an earlier run
        for path in sorted((directory / stale).glob("*")) if (directory / stale).exists() else []:
            path.unlink()
    server = serve(
        "main:app",
        "--app-dir", ".", "--task-workers", "2", "--process", "jobs:consume",
        workers=2, cwd=directory,
    )  # fmt: skip
    titles = server.children().values()
    assert sum("swserve: task worker" in t for t in titles) == 2
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        counted = client.get("/primes/50000").json()
        assert counted["primes"] == 5133
        assert counted["task_worker"] not in _worker_pids(server)
        assert client.get("/primes/1").status_code == 422

        job = client.post("/jobs", json={"text": "to be or not to be"})
        assert job.status_code == 202
        job_id = job.json()["id"]
        deadline = time.monotonic() + 20
        while (done := client.get(f"/jobs/{job_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.05)
        assert done["words"] == 6
        consumers = [p for p, t in server.children().items() if "process 1 jobs:consume" in t]
        assert done["consumer"] in consumers
    _no_traceback(server)


def test_chat_example_across_workers(serve: Starter) -> None:
    import asyncio
    import json as jsonlib

    from websockets.asyncio.client import connect

    directory = EXAMPLES / "chat"
    assert "swserve app:app --workers 4" in (directory / "README.md").read_text()
    server = serve("app:app", "--app-dir", ".", workers=4, cwd=directory)
    url = f"ws://127.0.0.1:{server.port}/chat/lobby"

    async def go() -> None:
        clients = []
        workers: set[int] = set()
        for _ in range(8):  # the idle dispatcher spreads sessions over the workers
            ws = await connect(url)
            hello = jsonlib.loads(await ws.recv())
            clients.append((ws, hello))
            workers.add(hello["worker"])
        assert len(workers) >= 2
        sender, me = clients[0]
        await sender.send("hi all")
        for ws, _ in clients[1:]:  # every other client, on every worker
            assert await asyncio.wait_for(ws.recv(), 10) == f"{me['you']}: hi all"
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
            reply = await http.post("/rooms/lobby/announce", params={"text": "x"})
        assert reply.json() == {"delivered": 8}
        for ws, _ in clients:
            assert await asyncio.wait_for(ws.recv(), 10) == "announcement: x"
            await ws.close()

    asyncio.run(asyncio.wait_for(go(), 40))
    _no_traceback(server)


@pytest.mark.timeout(90)
def test_chat_example_two_instances_with_redis(serve: Starter) -> None:
    import asyncio
    import shutil

    from tests.integration.redis_helpers import Redis, free_port

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from websockets.asyncio.client import connect

    redis = Redis(free_port())
    redis.start()
    try:
        directory = EXAMPLES / "chat"
        url = f"redis://127.0.0.1:{redis.port}/0"
        one = serve("app:app", "--app-dir", ".", "--broadcast-url", url, workers=2, cwd=directory)
        two = serve("app:app", "--app-dir", ".", "--broadcast-url", url, workers=2, cwd=directory)

        async def go() -> None:
            a = await connect(f"ws://127.0.0.1:{one.port}/chat/lobby")
            b = await connect(f"ws://127.0.0.1:{two.port}/chat/lobby")
            await a.recv()
            await b.recv()
            for i in range(300):  # until the second instance's subscription is up
                await a.send(f"m{i}")
                try:
                    got = await asyncio.wait_for(b.recv(), 0.2)
                    break
                except TimeoutError:
                    continue
            assert str(got).endswith(f": m{i}")
            await a.close()
            await b.close()

        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        redis.kill()
