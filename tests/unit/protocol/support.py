"""Loading the request corpus and feeding bytes to a parser, for the protocol tests."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from swserve.errors import ProtocolError
from swserve.protocol.h11_parser import H11Parser
from swserve.protocol.limits import Limits
from swserve.protocol.parser import HttptoolsParser
from swserve.protocol.request import Request

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "requests"

PARSERS = (HttptoolsParser, H11Parser)
PARSER_IDS = ("httptools", "h11")

# Inputs up to this size are fed one byte per feed() call.  Larger ones (the
# limit cases, 8-72 KB, mostly long runs of one letter) are cut at every offset
# within NEAR bytes of a delimiter, where parser states change, and every
# 256 bytes in between: a parser that is slow on many small feeds then cannot
# turn the corpus run into minutes (test_parser_state checks that separately).
BYTEWISE_MAX = 2048
NEAR = 4
_DELIMITERS = frozenset(b"\r\n :;,")


class Snap(NamedTuple):
    """A comparable picture of one Request."""

    method: bytes
    target: bytes
    version: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    keep_alive: bool
    expect_continue: bool

    @classmethod
    def of(cls, req: Request) -> Snap:
        return cls(
            req.method,
            req.target,
            req.version,
            tuple(req.headers),
            bytes(req.body),
            req.keep_alive,
            req.expect_continue,
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Snap:
        def raw(text: str) -> bytes:
            return text.encode("latin-1")

        body = base64.b64decode(obj["body_base64"]) if "body_base64" in obj else raw(obj["body"])
        return cls(
            raw(obj["method"]),
            raw(obj["target"]),
            raw(obj["version"]),
            tuple((raw(n), raw(v)) for n, v in obj["headers"]),
            body,
            obj["keep_alive"],
            obj.get("expect_continue", False),
        )


@dataclass(frozen=True)
class Case:
    kind: str  # "valid" or "invalid"
    name: str  # file stem, e.g. "001-simple-get"
    raw: bytes
    meta: dict[str, Any]

    @property
    def limits(self) -> Limits:
        return Limits(**self.meta.get("limits", {}))

    @property
    def requests(self) -> list[Snap]:
        return [Snap.from_json(r) for r in self.meta["requests"]]


def load(kind: str) -> list[Case]:
    folder = CORPUS / kind
    return [
        Case(kind, path.stem, path.read_bytes(), json.loads(path.with_suffix(".json").read_text()))
        for path in sorted(folder.glob("*.http"))
    ]


@dataclass
class Outcome:
    """What a parser made of a whole connection's bytes followed by EOF."""

    requests: list[Snap] = field(default_factory=list)
    status: int | None = None
    error_before_eof: bool = False
    reason: str = ""

    def summary(self) -> tuple[tuple[Snap, ...], int | None]:
        return tuple(self.requests), self.status


def run(
    parser_cls: type[HttptoolsParser] | type[H11Parser],
    chunks: Iterable[bytes],
    limits: Limits | None = None,
    *,
    eof: bool = True,
) -> Outcome:
    """Feed ``chunks`` then EOF; stop at the first ProtocolError.

    Anything but ProtocolError propagates: it is a bug in the glue.
    """
    parser = parser_cls(limits)
    out = Outcome()
    for chunk in chunks:
        try:
            out.requests += map(Snap.of, parser.feed(chunk))
        except ProtocolError as exc:
            out.requests += map(Snap.of, exc.completed)
            out.status, out.reason, out.error_before_eof = exc.status_hint, exc.reason, True
            return out
    if eof:
        try:
            out.requests += map(Snap.of, parser.feed(b""))
        except ProtocolError as exc:
            out.requests += map(Snap.of, exc.completed)
            out.status, out.reason = exc.status_hint, exc.reason
    return out


def split_at(raw: bytes, points: Sequence[int]) -> list[bytes]:
    """``raw`` cut at the given offsets (any order, duplicates ignored)."""
    cuts = [0, *sorted({p for p in points if 0 < p < len(raw)}), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(cuts)]


def bytewise(raw: bytes) -> list[bytes]:
    """One byte per piece, or for large inputs, one byte per piece near delimiters."""
    if len(raw) <= BYTEWISE_MAX:
        return [raw[i : i + 1] for i in range(len(raw))]
    points = set(range(256, len(raw), 256))
    for i, byte in enumerate(raw):
        if byte in _DELIMITERS:
            points.update(range(i - NEAR, i + NEAR + 2))
    return split_at(raw, sorted(points))
