"""Both parsers against the request corpus in ``tests/corpus/requests``.

Every case is fed three ways: whole, one byte per ``feed()`` (see
``support.bytewise``), and cut at hypothesis-chosen points; each way must give
exactly the expected requests, or ProtocolError with the expected status after
the expected number of complete requests.  Since both parsers are held to the
same expectation, they also agree with each other.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import Phase, given, settings, strategies as st

from tests.corpus import make_corpus
from tests.unit.protocol.support import (
    CORPUS,
    PARSER_IDS,
    PARSERS,
    Case,
    bytewise,
    load,
    run,
    split_at,
)

VALID = load("valid")
INVALID = load("invalid")

Feeder = Callable[[bytes], list[bytes]]
MODES: dict[str, Feeder] = {"whole": lambda raw: [raw], "bytewise": bytewise}

parsers = pytest.mark.parametrize("parser_cls", PARSERS, ids=PARSER_IDS)
modes = pytest.mark.parametrize("mode", list(MODES))
valid_cases = pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
invalid_cases = pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])


# bytewise feeding already tries every single cut; the random multi-cut runs
# need fewer examples than the profile's default to be useful.  No shrinking:
# a failing case names its (at most 8) cut points as found, and a corpus with
# open bugs still runs in seconds.
split_settings = settings(
    max_examples=max(10, settings().max_examples // 4),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def split_points(raw: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, len(raw) - 1), max_size=8)


def check_valid(parser_cls: type, case: Case, chunks: list[bytes]) -> None:
    outcome = run(parser_cls, chunks, case.limits)
    assert outcome.status is None, (
        f"{parser_cls.__name__} raised ProtocolError({outcome.status}, {outcome.reason!r})"
        f" after {len(outcome.requests)} request(s); {case.meta['description']}"
    )
    assert outcome.requests == case.requests, case.meta["description"]


def check_invalid(parser_cls: type, case: Case, chunks: list[bytes]) -> None:
    meta = case.meta
    outcome = run(parser_cls, chunks, case.limits)
    assert outcome.status is not None, (
        f"{parser_cls.__name__} accepted it: {outcome.requests}; {meta['description']}"
    )
    assert (outcome.status, len(outcome.requests)) == (meta["status"], meta["completed"]), (
        f"{parser_cls.__name__}: ProtocolError({outcome.status}, {outcome.reason!r}); "
        f"{meta['description']} ({meta['rfc']})"
    )
    if not meta["at_eof"]:
        assert outcome.error_before_eof, (
            f"{parser_cls.__name__} waited for more input instead of rejecting it"
        )


@parsers
@modes
@valid_cases
def test_valid(parser_cls: type, mode: str, case: Case) -> None:
    check_valid(parser_cls, case, MODES[mode](case.raw))


@parsers
@valid_cases
@split_settings
@given(data=st.data())
def test_valid_split(parser_cls: type, case: Case, data: st.DataObject) -> None:
    points = data.draw(split_points(case.raw), label="split points")
    check_valid(parser_cls, case, split_at(case.raw, points))


@parsers
@modes
@invalid_cases
def test_invalid(parser_cls: type, mode: str, case: Case) -> None:
    check_invalid(parser_cls, case, MODES[mode](case.raw))


@parsers
@invalid_cases
@split_settings
@given(data=st.data())
def test_invalid_split(parser_cls: type, case: Case, data: st.DataObject) -> None:
    points = data.draw(split_points(case.raw), label="split points")
    check_invalid(parser_cls, case, split_at(case.raw, points))


def test_corpus_matches_generator() -> None:
    """The committed files are exactly what make_corpus.py writes."""
    expected = make_corpus.render()
    on_disk = {
        f"{path.parent.name}/{path.name}": path.read_bytes()
        for kind in ("valid", "invalid")
        for path in sorted((CORPUS / kind).iterdir())
    }
    assert sorted(on_disk) == sorted(expected), "run: python tests/corpus/make_corpus.py"
    stale = [name for name, content in expected.items() if on_disk[name] != content]
    assert not stale, f"out of date (run python tests/corpus/make_corpus.py): {stale}"


def test_corpus_size() -> None:
    assert len(VALID) >= 25
    assert len(INVALID) >= 35
    for case in VALID:
        assert case.meta["requests"], case.name
    for case in INVALID:
        assert case.meta["status"] in {400, 413, 414, 417, 431, 501, 505}, case.name
