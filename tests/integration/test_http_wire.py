"""HTTP/1.1 on the wire, with raw sockets: keep-alive, pipelining, chunked, 100-continue, HEAD, 1.0."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.helpers import ResponseReader, connect, exchange
from tests.integration.conftest import Server, swserve_args

pytestmark = pytest.mark.modes("process", "base", "reactors")


@pytest.fixture(scope="module", params=["httptools", "h11"])
def port(request: pytest.FixtureRequest, mode: str) -> Iterator[int]:
    """Every wire test runs against both parsers: the same bytes, the same answers."""
    server = Server(swserve_args("wsgi_echo:app", "--http", request.param, mode=mode))
    try:
        server.wait_ready()
        yield server.port
    finally:
        code = server.stop()
        if code != 0:
            pytest.fail(f"swserve --http {request.param} exited with {code}\n{server.logs()}")


def test_get_has_date_server_and_length(port: int) -> None:
    (r,) = exchange(port, b"GET /echo?a=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 200
    assert r.header("date")
    assert r.header("server") == "swserve"
    assert r.header("content-length") == "0"
    assert r.header("x-query") == "a=1"


def test_keep_alive_serves_many_requests_on_one_connection(port: int) -> None:
    with connect(port) as sock:
        reader = ResponseReader(sock)
        for i in range(5):
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n" + str(i).encode()
            )
            r = reader.read()
            assert (r.status, r.body) == (200, str(i).encode())
            assert r.header("connection") is None


def test_pipelined_responses_come_in_request_order(port: int) -> None:
    reqs = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
        for b in (b"first", b"second", b"third")
    )
    slow_first = b"GET /sleep?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n" + reqs
    responses = exchange(port, slow_first, 4)
    assert [r.body for r in responses] == [b"slept", b"first", b"second", b"third"]


def test_chunked_request_body(port: int) -> None:
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    (r,) = exchange(port, data)
    assert r.body == b"hello world"


def test_streamed_response_without_length_is_chunked(port: int) -> None:
    (r,) = exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.header("transfer-encoding") == "chunked"
    assert r.body == b"one two three"


def test_http10_response_is_close_delimited(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        reader = ResponseReader(sock)
        r = reader.read()
        assert r.header("transfer-encoding") is None
        assert r.body == b"one two three"


def test_http10_keep_alive(port: int) -> None:
    with connect(port) as sock:
        reader = ResponseReader(sock)
        for _ in range(2):
            sock.sendall(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = reader.read()
            assert r.status == 200
            assert r.header("connection") == "keep-alive"


def test_http10_without_keep_alive_closes(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        assert reader.closed()


def test_connection_close_is_honoured(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reader = ResponseReader(sock)
        r = reader.read()
        assert r.header("connection") == "close"
        assert reader.closed()


def test_expect_100_continue(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = ResponseReader(sock)
        interim = reader.read()
        assert interim.status == 100
        sock.sendall(b"body")
        final = reader.read()
        assert (final.status, final.body) == (200, b"body")


def test_expect_100_with_too_large_body_gets_413_without_continue(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = ResponseReader(sock)
        assert reader.read().status == 413
        assert reader.closed()


def test_head_has_no_body_but_keeps_the_length(port: int) -> None:
    with connect(port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"HEAD /pid HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        head = reader.read(head_request=True)
        assert head.status == 200
        assert int(head.header("content-length") or 0) > 0
        nxt = reader.read()  # the next response starts right after the head: no body leaked
        assert nxt.status == 200
        assert nxt.header("x-method") == "GET"


@pytest.mark.parametrize("code", [204, 304])
def test_204_and_304_have_no_body_and_no_framing(port: int, code: int) -> None:
    with connect(port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(
            b"GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
            % code
        )
        r = reader.read()
        assert r.status == code
        assert r.header("transfer-encoding") is None
        assert reader.read().header("x-method") == "GET"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(120))
            + b"\r\n",
            431,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ],
)
def test_malformed_requests_get_an_error_and_a_close(port: int, raw: bytes, status: int) -> None:
    with connect(port) as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        r = reader.read()
        assert r.status == status
        assert r.header("connection") == "close"
        assert b"GARBAGE" not in r.body  # error pages never echo the request
        assert reader.closed()
    # and the server keeps serving everyone else
    assert exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")[0].status == 200


def test_error_after_completed_pipelined_request_answers_both_in_order(port: int) -> None:
    responses = exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n", 2)
    assert [r.status for r in responses] == [200, 400]


def test_app_exception_before_start_is_a_500_and_the_connection_lives(port: int) -> None:
    with connect(port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.read().status == 500
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.read().status == 200


def test_app_exception_after_start_closes_the_connection(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /late-error HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = ResponseReader(sock)
        with pytest.raises(EOFError):
            reader.read()  # the chunked body never ends: the client sees a truncated response


def test_large_body_round_trip(port: int) -> None:
    body = bytes(range(256)) * 4096 * 10  # 10 MiB: split into several frames on the way
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    with connect(port, timeout=30) as sock:
        sock.sendall(head + body)
        r = ResponseReader(sock).read()
    assert r.body == body


def test_client_that_leaves_mid_request_does_not_disturb_others(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    sock.close()
    assert exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")[0].status == 200


def test_underscore_header_names_never_reach_the_environ(port: int) -> None:
    (r,) = exchange(
        port,
        b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n",
    )
    assert '"HTTP_X_FORWARDED_FOR": "1.2.3.4"' in r.body.decode()


def test_absolute_form_target_overrides_host(port: int) -> None:
    (r,) = exchange(
        port, b"GET http://example.org:9000/environ?q=1 HTTP/1.1\r\nHost: evil.test\r\n\r\n"
    )
    body = r.body.decode()
    assert '"HTTP_HOST": "example.org:9000"' in body
    assert '"SERVER_NAME": "example.org"' in body
    assert '"PATH_INFO": "/environ"' in body
    assert "evil.test" not in body
