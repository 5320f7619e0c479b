"""The reactor's Date header: what email.utils.formatdate(usegmt=True) gives, without it."""

from __future__ import annotations

import time
from email.utils import formatdate

from hypothesis import given, strategies as st

from swserve.reactor.core import http_date


def test_rfc_9110_example() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_now() -> None:
    now = time.time()
    assert http_date(now) == formatdate(int(now), usegmt=True)  # whole seconds, not rounded


# from 1970 to 9999, every day of the week and month, leap days included
@given(st.integers(min_value=0, max_value=253402300799))
def test_same_as_email_utils(seconds: int) -> None:
    assert http_date(seconds) == formatdate(seconds, usegmt=True)
