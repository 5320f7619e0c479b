"""control/protocol.py: the control socket's JSON lines, checked against the command table."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from swserve.control.protocol import (
    COMMANDS,
    MAX_REQUEST,
    ControlError,
    LineReader,
    decode_request,
    decode_response,
    encode_error,
    encode_ok,
    encode_request,
    parse_scale,
)


@pytest.mark.parametrize(
    ("cmd", "args"),
    [
        ("stats", {}),
        ("recycle", {"slot": 2}),
        ("scale", {"by": -1}),
        ("reload", {"task_workers": True}),
    ],
)
def test_a_request_round_trips(cmd: str, args: dict[str, object]) -> None:
    line = encode_request(cmd, args)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    request = decode_request(line.rstrip(b"\n"))
    assert (request.cmd, request.args) == (cmd, args)


def test_every_command_in_the_table_is_accepted_without_arguments() -> None:
    for name in COMMANDS:
        assert decode_request(encode_request(name)).cmd == name


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "one JSON object per line"),
        (b"[1, 2]", "one JSON object per line"),
        (b'{"cmd": "stats"}', "unsupported protocol version None"),
        (b'{"v": 2, "cmd": "stats"}', "unsupported protocol version 2"),
        (b'{"v": 1, "cmd": "rm -rf"}', "unknown command 'rm -rf'; commands: stats, workers"),
        (b'{"v": 1, "cmd": 3}', "unknown command 3"),
        (b'{"v": 1, "cmd": "stats", "args": []}', "stats: args must be an object"),
        (
            b'{"v": 1, "cmd": "recycle", "args": {"path": "/etc"}}',
            "recycle: unknown argument 'path'",
        ),
        (
            b'{"v": 1, "cmd": "recycle", "args": {"slot": "1"}}',
            "recycle: slot must be int, got '1'",
        ),
        (
            b'{"v": 1, "cmd": "recycle", "args": {"slot": true}}',
            "recycle: slot must be int, got True",
        ),
        (b'{"v": 1, "cmd": "reload", "args": {"task_workers": 1}}', "task_workers must be bool"),
        (b"\xff\xfe", "one JSON object per line"),
    ],
)
def test_a_bad_request_is_one_clear_line(line: bytes, message: str) -> None:
    with pytest.raises(ControlError, match=message.replace("(", r"\(").replace("[", r"\[")):
        decode_request(line)


def test_no_command_takes_a_string_so_none_carries_a_path_or_code() -> None:
    for command in COMMANDS.values():
        assert all(kind in (int, bool) for kind in command.args.values()), command.name


def test_an_oversized_request_is_refused() -> None:
    with pytest.raises(ControlError, match="longer than"):
        decode_request(b" " * (MAX_REQUEST + 1))


def test_responses_carry_a_result_or_the_servers_error() -> None:
    assert decode_response(encode_ok({"a": [1]})) == {"a": [1]}
    assert json.loads(encode_ok(None)) == {"v": 1, "ok": True, "result": None}
    with pytest.raises(ControlError, match=r"^there is no serving worker in slot 9$"):
        decode_response(encode_error("there is no serving worker in slot 9"))
    for bad in (b"{", b"{}", b"[]"):
        with pytest.raises(ControlError, match="malformed"):
            decode_response(bad)


@given(st.lists(st.integers(0, 200), max_size=6))
def test_the_line_reader_gives_the_same_lines_however_the_bytes_are_split(cuts: list[int]) -> None:
    data = encode_request("stats") + encode_request("recycle", {"slot": 1}) + b'{"partial'
    points = sorted({min(c, len(data)) for c in cuts})
    reader = LineReader(1024)
    lines = []
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        lines += reader.feed(data[start:end])
    assert [decode_request(x).cmd for x in lines] == ["stats", "recycle"]


def test_the_line_reader_refuses_a_line_past_its_limit() -> None:
    reader = LineReader(10)
    assert reader.feed(b"0123456789\n") == [b"0123456789"]
    with pytest.raises(ControlError, match="longer than 10"):
        reader.feed(b"x" * 11)


@pytest.mark.parametrize(
    ("text", "args"), [("3", {"to": 3}), ("+1", {"by": 1}), ("-1", {"by": -1}), ("+12", {"by": 12})]
)
def test_scale_arguments(text: str, args: dict[str, int]) -> None:
    assert parse_scale(text) == args


@pytest.mark.parametrize("text", ["", "+", "-", "x", "1.5", "+-1", "--1", "1e3", "9999999"])
def test_bad_scale_arguments(text: str) -> None:
    with pytest.raises(ControlError, match="scale takes N, \\+K or -K"):
        parse_scale(text)


def test_only_reload_scale_and_recycle_steer_the_server() -> None:
    assert {c.name for c in COMMANDS.values() if c.steers} == {"reload", "scale", "recycle"}
