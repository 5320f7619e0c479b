"""--no-date-header / --no-server-header: the reactor's cached Date/Server block."""

from __future__ import annotations

import pytest

from swserve.protocol.serializer import (
    HAS_CONTENT_LENGTH,
    HAS_DATE,
    HAS_SERVER,
    date_server_block,
    error_response,
    plan_response,
    response_head,
)
from tests.unit.protocol.test_serializer import (
    client_for,
    header_lines,
    make_request,
    read_response,
)

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    ("date_header", "server_header", "block"),
    [
        (True, True, b"date: " + DATE + b"\r\nserver: swserve\r\n"),
        (False, True, b"server: swserve\r\n"),
        (True, False, b"date: " + DATE + b"\r\n"),
        (False, False, b""),
    ],
)
def test_block(date_header: bool, server_header: bool, block: bytes) -> None:
    assert date_server_block(DATE, date_header=date_header, server_header=server_header) == block


@pytest.mark.parametrize("app_flags", [0, HAS_DATE, HAS_SERVER, HAS_DATE | HAS_SERVER])
@pytest.mark.parametrize(
    ("date_header", "server_header"), [(False, True), (True, False), (False, False)]
)
def test_toggles_leave_out_ours_but_keep_the_apps(
    app_flags: int, date_header: bool, server_header: bool
) -> None:
    req = make_request()
    flags = app_flags | HAS_CONTENT_LENGTH
    app = b"content-length: 0\r\n"
    if app_flags & HAS_DATE:
        app += b"date: Mon, 07 Nov 1994 00:00:00 GMT\r\n"
    if app_flags & HAS_SERVER:
        app += b"server: my-app\r\n"
    block = date_server_block(DATE, date_header=date_header, server_header=server_header)
    head = response_head(req, 200, flags, app, plan_response(req, 200, flags), block)
    lines = header_lines(head)
    dates = [line for line in lines if line.startswith(b"date:")]
    servers = [line for line in lines if line.startswith(b"server:")]
    if app_flags & HAS_DATE:
        assert dates == [b"date: mon, 07 nov 1994 00:00:00 gmt"]
    else:
        assert len(dates) == int(date_header)
    if app_flags & HAS_SERVER:
        assert servers == [b"server: my-app"]
    else:
        assert servers == ([b"server: swserve"] if server_header else [])
    response, body, _ = read_response(client_for(req), head)
    assert (response.status_code, body) == (200, b"")


def test_error_responses_follow_the_toggles() -> None:
    wire = error_response(400, date_server_block(DATE, date_header=False, server_header=False))
    lines = header_lines(wire[: wire.index(b"\r\n\r\n") + 4])
    assert not [line for line in lines if line.startswith((b"date:", b"server:"))]
    response, _, _ = read_response(client_for(make_request()), wire)
    assert response.status_code == 400
