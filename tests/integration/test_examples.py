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
