"""--metrics-bind: /metrics after real traffic, across a reload and a crash; /healthz, /readyz."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

METRICS_ARGS = ("--metrics-bind", "127.0.0.1:0")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_port(server: Server) -> int:
    return int(server.wait_for(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))


def get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)


def scrape(port: int) -> Samples:
    response = get(port, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def requests_by_label(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["method"], dict(labels)["status"]): v
        for (name, labels), v in samples.items()
        if name == "swserve_requests_total"
    }


def one(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def poll(
    port: int, predicate: Callable[[Samples], bool], what: str, timeout: float = 20.0
) -> Samples:
    """Scrape until ``predicate(samples)`` holds, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if predicate(samples):
            return samples
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {samples}"
        time.sleep(0.05)  # polling the endpoint under test, with a deadline


def test_metrics_count_what_was_sent(serve: Starter) -> None:
    server = serve("wsgi_echo:app", *METRICS_ARGS, workers=2)
    port = metrics_port(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/echo").status_code == 200
        for _ in range(2):
            assert client.post("/echo", content=b"hello").content == b"hello"
        assert client.get("/status?code=404").status_code == 404
        assert client.head("/echo").status_code == 200
    sent = {("GET", "2xx"): 3, ("POST", "2xx"): 2, ("GET", "4xx"): 1, ("HEAD", "2xx"): 1}
    # base mode: each worker sends its counts 0.1 s after answering, so poll
    samples = poll(port, lambda s: requests_by_label(s) == sent, "every request counted")
    assert one(samples, "swserve_request_duration_seconds_count") == 7
    assert one(samples, "swserve_request_duration_seconds_bucket", le="+Inf") == 7
    assert 0 < one(samples, "swserve_request_duration_seconds_sum") < 7 * 10
    assert one(samples, "swserve_request_body_bytes_total") == 10
    assert one(samples, "swserve_response_body_bytes_total") == 10  # the two echoed bodies
    assert one(samples, "swserve_workers_alive") == 2
    assert one(samples, "swserve_workers_busy") == 0
    assert one(samples, "swserve_requests_in_flight") == 0
    assert one(samples, "swserve_requests_queued") == 0
    assert one(samples, "swserve_connections_accepted_total") >= 1
    assert one(samples, "swserve_ready") == 1
    assert get(port, "/healthz").status_code == 200
    ready = get(port, "/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")


def test_the_endpoint_answers_garbage_and_closes(serve: Starter) -> None:
    server = serve("wsgi_echo:app", *METRICS_ARGS, workers=1)
    port = metrics_port(server)
    assert get(port, "/").status_code == 404
    assert httpx.post(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 405
    cases = [
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
        (b"GET /metrics HTTP/9\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000, 431),  # no end of head, over the limit
    ]
    for data, status in cases:
        with connect(port) as sock:
            sock.sendall(data)
            reader = ResponseReader(sock)
            assert reader.read().status == status
            assert reader.closed()
    # the app's listener and the endpoint are still fine
    assert httpx.get(server.url + "/echo", timeout=10).status_code == 200
    assert get(port, "/healthz").status_code == 200


def test_counters_survive_a_reload_and_count_restarts(serve: Starter) -> None:
    server = serve("wsgi_echo:app", *METRICS_ARGS, workers=2)
    port = metrics_port(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(5):
            assert client.get("/echo").status_code == 200
        before = poll(port, lambda s: requests_by_label(s) == {("GET", "2xx"): 5}, "5 GETs")
        assert one(before, "swserve_reloads_total") == 0
        assert one(before, "swserve_worker_restarts_total", reason="reload") == 0

        marker = len(server.stderr)
        server.send(signal.SIGHUP)
        server.wait_for("reload finished", start=marker, timeout=30)
        after = poll(port, lambda s: one(s, "swserve_reloads_total") == 1, "the reload")
        assert requests_by_label(after) == {("GET", "2xx"): 5}  # the old workers' counts stay
        assert one(after, "swserve_request_duration_seconds_count") == 5
        assert one(after, "swserve_reloads_total") == 1
        assert one(after, "swserve_worker_restarts_total", reason="reload") == 2
        assert one(after, "swserve_worker_restarts_total", reason="crash") == 0
        assert one(after, "swserve_workers_alive") == 2

        for _ in range(3):
            assert client.get("/echo").status_code == 200
    poll(port, lambda s: requests_by_label(s) == {("GET", "2xx"): 8}, "8 GETs")

    workers = [pid for pid, title in server.children().items() if title == "swserve: worker 1"]
    os.kill(workers[0], signal.SIGKILL)
    crashed = poll(
        port,
        lambda s: (
            one(s, "swserve_worker_restarts_total", reason="crash") == 1
            and one(s, "swserve_workers_alive") == 2
        ),
        "the crash to be counted and the worker replaced",
    )
    assert one(crashed, "swserve_worker_restarts_total", reason="reload") == 2
    assert requests_by_label(crashed) == {("GET", "2xx"): 8}


def test_answers_swserve_writes_itself_are_counted(serve: Starter) -> None:
    """A 504 past --timeout (with its real duration) and a 400 for garbage count as requests."""
    server = serve("wsgi_echo:app", *METRICS_ARGS, "--timeout", "1", "--graceful-timeout", "2")
    port = metrics_port(server)
    assert httpx.get(server.url + "/sleep?s=3600", timeout=20).status_code == 504
    with connect(server.port) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert ResponseReader(sock).read().status == 400
    samples = poll(
        port,
        lambda s: (
            one(s, "swserve_worker_restarts_total", reason="timeout") == 1
            and requests_by_label(s) == {("GET", "5xx"): 1, ("other", "4xx"): 1}
        ),
        "the timed-out worker and both answers to be counted",
    )
    assert one(samples, "swserve_request_duration_seconds_bucket", le="0.5") == 1  # the 400
    assert one(samples, "swserve_request_duration_seconds_count") == 2
    assert one(samples, "swserve_request_duration_seconds_sum") >= 1.0


def test_readyz_is_503_while_draining(serve: Starter, tmp_path: Path, mode: str) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = serve("gate:app", *METRICS_ARGS, "--graceful-timeout", "20", workers=1)
    port = metrics_port(server)
    assert get(port, "/readyz").status_code == 200
    result: dict[str, httpx.Response] = {}
    slow = threading.Thread(
        target=lambda: result.update(r=httpx.get(f"{server.url}/wait?g={gate}", timeout=40))
    )
    slow.start()
    try:
        server.wait_for("gate: waiting", stream="stdout")
        if mode != "base":  # a one-thread base worker reports between requests only
            assert one(scrape(port), "swserve_requests_in_flight") == 1
        server.send(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while (ready := get(port, "/readyz")).status_code != 503:
            assert ready.status_code == 200
            assert time.monotonic() < deadline, "/readyz never said 503"
            time.sleep(0.02)  # polling the endpoint under test, with a deadline
        assert ready.text == "draining\n"
        assert get(port, "/healthz").status_code == 200  # alive, just not ready
        assert one(scrape(port), "swserve_ready") == 0
    finally:
        with open(gate, "wb") as release:  # lets the request finish (and unblocks a failed test)
            release.write(b"go")
        slow.join(40)
    assert result["r"].status_code == 200
    assert result["r"].text == "released"
    assert server.wait_exit(40) == 0


def test_readyz_is_503_while_starting(serve: Starter, tmp_path: Path) -> None:
    """Before every worker is ready (here: never, the app cannot load) /readyz says 503."""
    app = tmp_path / "slowboot.py"
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    app.write_text(
        f"print('booting', flush=True)\nopen({str(gate)!r}, 'rb').read()\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'up']\n"
    )
    server = serve("slowboot:app", *METRICS_ARGS, "--app-dir", str(tmp_path), workers=1, wait=False)
    port = metrics_port(server)
    try:
        server.wait_for("booting", stream="stdout")
        starting = get(port, "/readyz")
        assert (starting.status_code, starting.text) == (503, "starting\n")
        assert get(port, "/healthz").status_code == 200
    finally:
        with open(gate, "wb") as release:
            release.write(b"go")
    server.wait_ready()
    assert get(port, "/readyz").status_code == 200


def test_a_busy_metrics_address_fails_fast(serve: Starter) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        server = serve("wsgi_echo:app", "--metrics-bind", f"127.0.0.1:{busy}", wait=False)
        server.expected_exit = 1
        assert server.wait_exit(30) == 1
    server.wait_for(rf"--metrics-bind: cannot listen on 127\.0\.0\.1:{busy}")
    assert not any("Traceback" in line for line in server.stderr), server.logs()
    assert not any("Listening on" in line for line in server.stderr)
