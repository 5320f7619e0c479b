"""RequestMetrics: labels, buckets, the additive snapshot and its merge."""

from __future__ import annotations

import timeit

from hypothesis import given, strategies as st

from swserve.metrics.exposition import (
    BYTES_IN,
    BYTES_OUT,
    CONN_ACCEPTED,
    DURATION,
    REQUESTS,
    key,
    merge,
)
from swserve.metrics.requests import RequestMetrics


def test_requests_are_counted_by_method_and_status_class() -> None:
    m = RequestMetrics()
    m.observe(b"GET", 200, 0.001, 0, 10)
    m.observe(b"GET", 204, 0.001, 0, 0)
    m.observe(b"GET", 404, 0.001, 0, 9)
    m.observe(b"POST", 201, 0.001, 5, 0)
    m.observe(b"BREW", 418, 0.001, 0, 0)  # an invented method does not make a new series
    m.observe(b"", 400, 0.0, 0, 0)  # a request that never parsed
    m.observe(b"GET", 999, 0.0, 0, 0)
    snap = m.snapshot()
    requests = {k: v for k, v in snap.items() if k.startswith(REQUESTS)}
    assert requests == {
        key(REQUESTS, "GET", "2xx"): 2,
        key(REQUESTS, "GET", "4xx"): 1,
        key(REQUESTS, "POST", "2xx"): 1,
        key(REQUESTS, "other", "4xx"): 2,
        key(REQUESTS, "GET", "other"): 1,
    }
    assert snap[BYTES_IN] == 5
    assert snap[BYTES_OUT] == 19


def test_durations_fall_in_le_buckets() -> None:
    m = RequestMetrics()
    for seconds in (0.0, 0.005, 0.0051, 0.3, 10.0, 11.0):
        m.observe(b"GET", 200, seconds, 0, 0)
    snap = m.snapshot()
    assert snap[key(DURATION + "_bucket", "0.005")] == 2  # le: 0.005 itself is in
    assert snap[key(DURATION + "_bucket", "0.01")] == 1
    assert snap[key(DURATION + "_bucket", "0.5")] == 1
    assert snap[key(DURATION + "_bucket", "10.0")] == 1
    assert snap[key(DURATION + "_bucket", "+Inf")] == 1
    assert snap[DURATION + "_sum_us"] == 21_310_100


def test_snapshot_is_ints_only() -> None:
    m = RequestMetrics()
    m.observe(b"GET", 200, 0.1234567, 3, 4)
    m.connections_accepted += 2
    snap = m.snapshot()
    assert all(type(v) is int for v in snap.values())
    assert snap[CONN_ACCEPTED] == 2


observations = st.lists(
    st.tuples(
        st.sampled_from([b"GET", b"POST", b"HEAD", b"WEIRD", b""]),
        st.integers(min_value=100, max_value=65535),
        st.floats(min_value=0, max_value=100, allow_nan=False),
        st.integers(min_value=0, max_value=10**9),
        st.integers(min_value=0, max_value=10**9),
    ),
    max_size=40,
)


@given(observations, st.integers(min_value=0, max_value=40))
def test_merged_sources_equal_one_source(
    obs: list[tuple[bytes, int, float, int, int]], cut: int
) -> None:
    """Two reactors' snapshots, summed, are what one reactor seeing everything would report."""
    whole, first, second = RequestMetrics(), RequestMetrics(), RequestMetrics()
    for i, o in enumerate(obs):
        whole.observe(*o)
        (first if i < cut else second).observe(*o)
    merged = merge([first.snapshot(), second.snapshot()])
    expected = whole.snapshot()
    assert {k: v for k, v in merged.items() if v} == {k: v for k, v in expected.items() if v}


def test_merge_adds_key_by_key() -> None:
    assert merge([{"a": 1, "b": 2}, {"b": 3, "c": 4}, {}]) == {"a": 1, "b": 5, "c": 4}
    assert merge([]) == {}


def test_observe_is_cheap() -> None:
    """Measured ~0.42 µs; the budget is loose because this machine is shared by many tests."""
    m = RequestMetrics()
    best = min(
        timeit.repeat(lambda: m.observe(b"GET", 200, 0.0123, 0, 512), number=20_000, repeat=5)
    )
    assert best / 20_000 < 5e-6
