"""The metric catalogue and Prometheus text exposition (format 0.0.4), sans-IO.

A *snapshot* is a ``dict[str, int]``: one key per sample, ``name`` or
``name|label value|label value…`` (label values in the order of the
metric's ``labels``), every value an integer.  Integers only, so snapshots
from several processes are merged by plain addition (:func:`merge`) and can
cross a pipe as JSON; the one non-integer quantity, the histogram's sum of
seconds, is kept in microseconds.  Every gauge here is additive too (open
connections, requests in flight): two reactors' gauges sum to the server's.

:data:`METRICS` is the one table of what swserve exports; docs/metrics.md
describes the same rows for users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
SEP: Final = "|"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    # label values always exported, even at 0, so that rate() has a series from the start
    known: tuple[tuple[str, ...], ...] = ()
    buckets: tuple[float, ...] = ()  # histogram upper bounds in seconds, +Inf implied


REQUESTS: Final = "swserve_requests_total"
DURATION: Final = "swserve_request_duration_seconds"
BYTES_IN: Final = "swserve_request_body_bytes_total"
BYTES_OUT: Final = "swserve_response_body_bytes_total"
IN_FLIGHT: Final = "swserve_requests_in_flight"
QUEUED: Final = "swserve_requests_queued"
CONN_OPEN: Final = "swserve_connections_open"
CONN_ACCEPTED: Final = "swserve_connections_accepted_total"
WORKERS_ALIVE: Final = "swserve_workers_alive"
WORKERS_BUSY: Final = "swserve_workers_busy"
WORKERS_RETIRING: Final = "swserve_workers_retiring"
RESTARTS: Final = "swserve_worker_restarts_total"
RELOADS: Final = "swserve_reloads_total"
READY: Final = "swserve_ready"
# task workers and user processes (swserve/tasks/, swserve/manager/user_processes.py)
TASKS: Final = "swserve_tasks_total"
TASK_REJECTED: Final = "swserve_tasks_rejected_total"
TASK_QUEUE: Final = "swserve_task_queue_depth"
TASK_RUNNING: Final = "swserve_tasks_running"
TASK_DURATION: Final = "swserve_task_duration_seconds"
TASK_WORKERS_ALIVE: Final = "swserve_task_workers_alive"
USER_PROCESS_RESTARTS: Final = "swserve_user_process_restarts_total"
BACKING_OFF: Final = "swserve_workers_backing_off"
BOOT_FAILURES: Final = "swserve_worker_boot_failures_total"
WS_OPEN: Final = "swserve_websocket_sessions_open"
WS_OPENED: Final = "swserve_websocket_sessions_opened_total"
WS_CLOSED: Final = "swserve_websocket_sessions_closed_total"
WS_MESSAGES: Final = "swserve_websocket_messages_total"
WS_BYTES: Final = "swserve_websocket_message_bytes_total"
# close codes with a label of their own; the rest are grouped, so that a client cannot
# grow the number of series with codes of its choosing (3000-4999 are free for apps)
WS_CLOSE_CODES: Final = (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012)
DIRECTIONS: Final = (("in",), ("out",))

# Prometheus' default buckets: they cover 5 ms to 10 s, where web requests live.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESTART_REASONS: Final = ("crash", "lifetime", "max-requests", "memory", "reload", "timeout")
# Task run times: from a millisecond (a trivial task) to minutes (a report).
TASK_DURATION_BUCKETS: Final = (0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)
TASK_OUTCOMES: Final = ("ok", "raised", "timeout", "lost")

METRICS: Final[tuple[Metric, ...]] = (
    Metric(
        REQUESTS, "counter", "Requests answered, by method and status class.", ("method", "status")
    ),
    Metric(
        DURATION,
        "histogram",
        "Seconds from a complete request to the last byte of its response handed to the socket.",
        buckets=DURATION_BUCKETS,
    ),
    Metric(BYTES_IN, "counter", "Request body bytes received."),
    Metric(BYTES_OUT, "counter", "Response body bytes sent."),
    Metric(IN_FLIGHT, "gauge", "Requests being run by a worker."),
    Metric(QUEUED, "gauge", "Complete requests waiting in a reactor for a free worker."),
    Metric(CONN_OPEN, "gauge", "Client connections open."),
    Metric(CONN_ACCEPTED, "counter", "Client connections accepted."),
    Metric(WORKERS_ALIVE, "gauge", "Workers that are ready and take new requests."),
    Metric(WORKERS_BUSY, "gauge", "Of those, workers with at least one request in flight."),
    Metric(WORKERS_RETIRING, "gauge", "Workers finishing their requests before they stop."),
    Metric(
        RESTARTS,
        "counter",
        "Workers replaced, by reason.",
        ("reason",),
        known=tuple((r,) for r in RESTART_REASONS),
    ),
    Metric(RELOADS, "counter", "Reloads finished (every worker replaced)."),
    Metric(READY, "gauge", "1 when /readyz answers 200, else 0."),
    Metric(
        TASKS,
        "counter",
        "Tasks finished, by outcome: ok, raised (the task's exception), timeout "
        "(--task-timeout), lost (its task worker died).",
        ("outcome",),
        known=tuple((o,) for o in TASK_OUTCOMES),
    ),
    Metric(TASK_REJECTED, "counter", "Tasks refused because the task queue was full."),
    Metric(TASK_QUEUE, "gauge", "Tasks waiting for a free task worker."),
    Metric(TASK_RUNNING, "gauge", "Tasks being run by a task worker."),
    Metric(
        TASK_DURATION,
        "histogram",
        "Seconds a task ran in its task worker.",
        buckets=TASK_DURATION_BUCKETS,
    ),
    Metric(TASK_WORKERS_ALIVE, "gauge", "Task workers that take tasks."),
    Metric(USER_PROCESS_RESTARTS, "counter", "User processes (--process) restarted."),
    Metric(
        BACKING_OFF,
        "gauge",
        "Worker slots whose respawns keep failing to boot, waiting out a back-off.",
    ),
    Metric(BOOT_FAILURES, "counter", "Respawned workers that failed to boot after start-up."),
    Metric(WS_OPEN, "gauge", "WebSocket sessions open."),
    Metric(WS_OPENED, "counter", "WebSocket sessions accepted (a 101 sent)."),
    Metric(
        WS_CLOSED,
        "counter",
        "WebSocket sessions ended, by close code.",
        ("code",),
        known=tuple((str(c),) for c in (1000, 1001, 1011, 1012)),
    ),
    Metric(WS_MESSAGES, "counter", "WebSocket messages, by direction.", ("direction",), DIRECTIONS),
    Metric(
        WS_BYTES,
        "counter",
        "WebSocket message payload bytes (after decompression), by direction.",
        ("direction",),
        DIRECTIONS,
    ),
)


def metric(name: str) -> Metric:
    """The catalogue row of ``name``."""
    return next(m for m in METRICS if m.name == name)


def close_code_label(code: int) -> str:
    """A close code as a label value: the RFC's own codes, else 3xxx, 4xxx or other."""
    if code in WS_CLOSE_CODES:
        return str(code)
    if 3000 <= code < 5000:
        return f"{code // 1000}xxx"
    return "other"


def key(name: str, *labels: str) -> str:
    """The snapshot key of one sample; ``|`` in a label value would split it, so it becomes ``_``."""
    if not labels:
        return name
    return SEP.join((name, *(v.replace(SEP, "_") for v in labels)))


def merge(snapshots: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Sum snapshots key by key: counters and (additive) gauges of many sources → one."""
    out: dict[str, int] = {}
    for snap in snapshots:
        for k, v in snap.items():
            out[k] = out.get(k, 0) + v
    return out


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and line feed (text format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _float(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def render(snapshot: Mapping[str, int]) -> bytes:
    """The text exposition of ``snapshot``, every metric of :data:`METRICS` in table order."""
    grouped: dict[str, dict[tuple[str, ...], int]] = {}
    for k, v in snapshot.items():
        name, *values = k.split(SEP)
        grouped.setdefault(name, {})[tuple(values)] = v
    lines: list[str] = []
    for metric in METRICS:
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        if metric.kind == "histogram":
            lines += _histogram(metric, grouped)
            continue
        samples: dict[tuple[str, ...], int] = (
            dict.fromkeys(metric.known, 0) if metric.labels else {(): 0}
        )
        for label_values, v in grouped.get(metric.name, {}).items():
            if len(label_values) == len(metric.labels):  # a malformed key is skipped
                samples[label_values] = samples.get(label_values, 0) + v
        for label_values in sorted(samples):
            labels = _labels(metric.labels, label_values)
            lines.append(f"{metric.name}{labels} {samples[label_values]}")
    return ("\n".join(lines) + "\n").encode()


def _histogram(metric: Metric, grouped: Mapping[str, Mapping[tuple[str, ...], int]]) -> list[str]:
    """Snapshot buckets hold per-bucket counts (additive); the exposition is cumulative."""
    counts = grouped.get(metric.name + "_bucket", {})
    lines = []
    total = 0
    for bound in (*metric.buckets, float("inf")):
        le = _float(bound)
        total += counts.get((le,), 0)
        lines.append(f'{metric.name}_bucket{{le="{le}"}} {total}')
    micros = grouped.get(metric.name + "_sum_us", {}).get((), 0)
    lines.append(f"{metric.name}_sum {_float(micros / 1_000_000)}")
    lines.append(f"{metric.name}_count {total}")
    return lines


def bucket_labels(metric: Metric) -> tuple[str, ...]:
    """The ``le`` label of each bucket, +Inf last, as snapshot keys spell them."""
    return (*(_float(b) for b in metric.buckets), "+Inf")
