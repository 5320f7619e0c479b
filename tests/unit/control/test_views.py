"""master/control_views.py: metric keys as /metrics names them, and the 5xx count."""

from __future__ import annotations

from swserve.master.control_views import errors, labelled
from swserve.metrics.exposition import REQUESTS, key


def test_snapshot_keys_become_exposition_names() -> None:
    snap = {
        key(REQUESTS, "GET", "2xx"): 3,
        "swserve_workers_alive": 2,
        key("swserve_request_duration_seconds_bucket", "0.005"): 1,
    }
    assert labelled(snap) == {
        'swserve_request_duration_seconds_bucket{le="0.005"}': 1,
        'swserve_requests_total{method="GET",status="2xx"}': 3,
        "swserve_workers_alive": 2,
    }


def test_errors_are_the_5xx_answers_when_requests_are_counted() -> None:
    assert errors({"swserve_workers_alive": 2}) is None  # no --metrics-bind: not counted
    snap = {
        key(REQUESTS, "GET", "5xx"): 2,
        key(REQUESTS, "POST", "5xx"): 1,
        key(REQUESTS, "GET", "4xx"): 7,
    }
    assert errors(snap) == 3
