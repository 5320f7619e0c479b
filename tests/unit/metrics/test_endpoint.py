"""The endpoint's sans-IO answer: routes, methods, garbage."""

from __future__ import annotations

import pytest

from swserve.metrics.endpoint import respond
from swserve.metrics.exposition import CONTENT_TYPE

METRICS_TEXT = b"# a metric\n"


def answer(
    head: bytes, ready: tuple[bool, str] = (True, "ready")
) -> tuple[int, dict[str, str], bytes]:
    raw = respond(head, lambda: METRICS_TEXT, lambda: ready)
    head_part, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head_part.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert int(headers["content-length"]) == len(body) or head.startswith(b"HEAD")
    assert headers["connection"] == "close"
    return int(status_line.split()[1]), headers, body


def test_metrics() -> None:
    status, headers, body = answer(b"GET /metrics HTTP/1.1\r\nHost: x")
    assert (status, body) == (200, METRICS_TEXT)
    assert headers["content-type"] == CONTENT_TYPE


def test_query_string_is_ignored() -> None:
    assert answer(b"GET /metrics?name[]=x HTTP/1.0")[0] == 200


def test_healthz_and_readyz() -> None:
    assert answer(b"GET /healthz HTTP/1.1")[::2] == (200, b"ok\n")
    assert answer(b"GET /readyz HTTP/1.1")[::2] == (200, b"ready\n")
    assert answer(b"GET /readyz HTTP/1.1", (False, "draining"))[::2] == (503, b"draining\n")


def test_head_has_no_body() -> None:
    status, headers, body = answer(b"HEAD /metrics HTTP/1.1")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(METRICS_TEXT))


def test_unknown_path_is_404() -> None:
    assert answer(b"GET / HTTP/1.1")[0] == 404
    assert answer(b"GET /metrics/extra HTTP/1.1")[0] == 404


def test_other_methods_are_405() -> None:
    status, headers, _ = answer(b"POST /metrics HTTP/1.1")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x16\x03\x01\x02\x00",
        b"GET",
        b"GET /metrics",
        b"GET /metrics HTTP/2",
        b"GET metrics HTTP/1.1",
        b"GET  /metrics HTTP/1.1",
    ],
)
def test_garbage_is_400(head: bytes) -> None:
    assert answer(head)[0] == 400
