"""The text exposition, checked with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from swserve.metrics.exposition import (
    DURATION,
    METRICS,
    READY,
    RESTARTS,
    escape_label,
    key,
    merge,
    render,
)
from swserve.metrics.requests import RequestMetrics


def parse(text: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def test_every_metric_is_exported_even_when_empty() -> None:
    families = parse(render({}))
    # the parser strips _total from counter family names
    names = {m.name.removesuffix("_total") for m in METRICS}
    assert set(families) == names
    got = samples(render({}))
    assert got[RESTARTS, (("reason", "crash"),)] == 0
    assert got[DURATION + "_count", ()] == 0
    assert got[READY, ()] == 0


def test_histogram_is_cumulative_and_counts_every_request() -> None:
    m = RequestMetrics()
    for seconds in (0.001, 0.02, 0.02, 3.0):
        m.observe(b"GET", 200, seconds, 0, 0)
    got = samples(render(m.snapshot()))
    bucket = DURATION + "_bucket"
    assert got[bucket, (("le", "0.005"),)] == 1
    assert got[bucket, (("le", "0.025"),)] == 3
    assert got[bucket, (("le", "2.5"),)] == 3
    assert got[bucket, (("le", "5.0"),)] == 4
    assert got[bucket, (("le", "+Inf"),)] == 4
    assert got[DURATION + "_count", ()] == 4
    assert abs(got[DURATION + "_sum", ()] - 3.041) < 1e-6
    assert got["swserve_requests_total", (("method", "GET"), ("status", "2xx"))] == 4


def test_label_values_are_escaped() -> None:
    nasty = 'say "hi"\\now\nnext'
    assert escape_label(nasty) == 'say \\"hi\\"\\\\now\\nnext'
    text = render({key(RESTARTS, nasty): 3})
    got = samples(text)
    assert got[RESTARTS, (("reason", nasty),)] == 3  # the parser un-escapes to the same value


def test_a_pipe_in_a_label_value_cannot_split_the_key() -> None:
    text = render({key(RESTARTS, "a|b"): 1})
    assert samples(text)[RESTARTS, (("reason", "a_b"),)] == 1


def test_unknown_and_malformed_keys_are_left_out() -> None:
    text = render({"not_ours": 7, key(RESTARTS, "x", "extra"): 5, RESTARTS: 9})
    got = samples(text)
    assert not any(name == "not_ours" for name, _ in got)
    assert sum(v for (name, _), v in got.items() if name == RESTARTS) == 0


def test_merged_snapshots_render_as_one_server() -> None:
    a, b = RequestMetrics(), RequestMetrics()
    a.observe(b"GET", 200, 0.001, 0, 10)
    b.observe(b"GET", 503, 0.001, 0, 20)
    b.observe(b"POST", 200, 0.001, 7, 0)
    got = samples(render(merge([a.snapshot(), b.snapshot()])))
    assert got["swserve_requests_total", (("method", "GET"), ("status", "2xx"))] == 1
    assert got["swserve_requests_total", (("method", "GET"), ("status", "5xx"))] == 1
    assert got["swserve_requests_total", (("method", "POST"), ("status", "2xx"))] == 1
    assert got["swserve_response_body_bytes_total", ()] == 30
    assert got["swserve_request_body_bytes_total", ()] == 7
    assert got[DURATION + "_count", ()] == 3
