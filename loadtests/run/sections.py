"""The report's reload, slowloris and open-loop sections."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from loadtests.run.common import Point
from loadtests.run.scenarios import (
    BASELINE,
    CHURN,
    CLEAN,
    HELD,
    OPENLOOP,
    RECYCLE,
    RELOAD,
    SLOWLORIS,
    SLOWLORIS_CONNECTIONS,
    SLOWLORIS_MIN_RATIO,
    SLOWLORIS_SOAK_S,
)
from loadtests.run.servers import SERVERS, SERVERS_BY_NAME
from loadtests.run.settings import variant_rate
from loadtests.run.tables import (
    _first_app,
    _fmt,
    _groups,
    _int,
    _median,
    _replacements,
    _shorten,
    _socket_errors,
    _sum,
    _table,
    group_notes,
    paired_notes,
)


def reload_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, RELOAD)
    some = next(p for group in groups.values() for p in group)
    header = ["server", "app", "point", "req/s", "p50 ms", "p99 ms", "non-2xx"]
    header += ["socket errors c/r/w/t", "SIGHUPs sent / acted on", "worker replacements"]
    header += ["CPU µs/req", "churn ÷ baseline req/s", "churn ÷ baseline CPU/req"]
    header += ["churn ÷ recycle req/s", "bar"]
    header += ["ok/runs", "note"]
    rows: list[list[str]] = []
    bars: list[str] = []
    for (server_name, variant), group in groups.items():
        server = SERVERS_BY_NAME[server_name]
        ok = [p for p in group if p.status == "ok"]
        rps = _median([p.rps for p in ok])
        sockets = {
            kind: sum(p.socket_errors.get(kind, 0) for p in ok)
            for kind in ("connect", "read", "write", "timeout")
        }
        non_2xx = sum(p.non_2xx_3xx or 0 for p in ok)
        hups = "-"
        if variant == CHURN and ok:
            hups = f"{_int(_sum([p.hups_sent for p in ok]))} / "
            hups += _int(_sum([p.hups_acknowledged for p in ok]))
        ratio_text, cpu_ratio_text, recycle_text, bar = "", "", "", ""
        baseline = [p for p in groups.get((server_name, BASELINE), []) if p.status == "ok"]
        base_rps = _median([p.rps for p in baseline])
        recycled = [p for p in groups.get((server_name, RECYCLE), []) if p.status == "ok"]
        recycle_rps = _median([p.rps for p in recycled])
        cpu = _median([p.cpu_us_per_req for p in ok])
        base_cpu = _median([p.cpu_us_per_req for p in baseline])
        if variant == CHURN and cpu is not None and base_cpu:
            cpu_ratio_text = _fmt(cpu / base_cpu, 2)
        if variant == CHURN and rps is not None and base_rps:
            ratio_text = _fmt(rps / base_rps, 2)
        if variant == CHURN and rps is not None and recycle_rps:
            # Issue #3's bar: "throughput during the run >= 90% of the same run without
            # reloads", the run being SIGHUP every 2 s *and* --max-requests 200; the issue
            # calls SIGHUP/SIGUSR1 reloads and --max-requests recycling.
            ratio = rps / recycle_rps
            recycle_text = _fmt(ratio, 2)
            if server.subject:
                errors = non_2xx + sum(sockets.values())
                failed = [f"{errors} errors"] if errors else []
                failed += [f"ratio {ratio:.2f} < 0.90"] if ratio < RELOAD_MIN_RATIO else []
                bar = "FAIL: " + ", ".join(failed) if failed else "PASS"
                bars.append(
                    f"- {server_name}: {errors} errors during churn (bar: 0), churn ÷ recycle "
                    f"req/s {ratio:.2f} (bar: ≥ {RELOAD_MIN_RATIO:.2f}): **{bar}**; "
                    f"churn ÷ baseline {ratio_text or '-'}"
                )
        row = [server_name, _first_app(group), variant, _fmt(rps, 0)]
        row += [_fmt(_median([p.latency_ms.get("p50") for p in ok]), 2)]
        row += [_fmt(_median([p.latency_ms.get("p99") for p in ok]), 2)]
        row += [str(non_2xx) if ok else "-", "/".join(map(str, sockets.values())) if ok else "-"]
        row += [hups, _replacements(server, ok)]
        row += [_fmt(cpu), ratio_text, cpu_ratio_text, recycle_text, bar]
        row += [f"{len(ok)}/{len(group)}", group_notes(group)]
        rows.append(row)
    lines = [
        "## reload: SIGHUP every "
        f"{meta['hup_interval_s']:g} s + max-requests {meta['max_requests']}, vs. no churn",
        "",
        f"wrk -t1 -c{some.connections} -d{some.duration_s}s on the hello app, {some.workers} "
        "workers each; medians over the repeats, errors summed. *churn*: SIGHUP to the process "
        "the harness launched (swserve's master, gunicorn's arbiter, uvicorn's supervisor, "
        "granian's main process) every "
        f"{meta['hup_interval_s']:g} s from a harness thread, plus recycling after "
        f"{meta['max_requests']} requests + jitter up to {meta['max_requests'] // 2} (swserve "
        "`--max-requests`, whose jitter defaults to half; gunicorn `--max-requests "
        "--max-requests-jitter`; uvicorn `--limit-max-requests --limit-max-requests-jitter`; "
        "granian has no request limit: HUP only). *recycle*: the recycling alone, no SIGHUP: "
        'the issue\'s "same run without reloads", which the bar compares with. *baseline*: '
        "without either.",
        "",
        *_table(header, rows, left=3),
        "",
        "*SIGHUPs sent / acted on*: sent during the measured run / log lines saying the server "
        "acted on one. *worker replacements*: worker starts beyond the first "
        f"{some.workers} over the server's whole life (warm-up included), from its log "
        "(swserve: its own count of workers recycled and reloaded, from its last summary line). "
        "*socket errors*: wrk's connect/read/write/timeout. *churn ÷ baseline CPU/req*: what the "
        "churn costs per request; when the server's CPU is the limit, throughput falls by about "
        "its inverse, and it is much less disturbed by other work on the machine than req/s.",
    ]
    if bars:
        lines += ["", "Bars (from the issue):", "", *bars]
    targets = [
        f"- {server_name}: {_shorten(p.hup_target, 110)}"
        for (server_name, variant), group in groups.items()
        if variant == CHURN
        for p in group[:1]
        if p.hup_target
    ]
    if targets:
        lines += ["", "SIGHUP target (the process the harness launched, per server):", ""]
        lines += targets
    for (server_name, variant), group in groups.items():
        if not SERVERS_BY_NAME[server_name].subject:
            continue
        ok = [p for p in group if p.status == "ok"]  # the others are listed below, with their log
        for when, problems in (
            (
                "up to the end of the measured run",
                [x for p in ok for x in p.server_log_problems],
            ),
            (
                "while the harness stopped it (SIGTERM to the process group)",
                [x for p in ok for x in p.server_log_problems_at_stop],
            ),
        ):
            if problems:
                lines += ["", f"{server_name} {variant}: warnings and errors {when}", "", "```"]
                lines += [*problems[:20], "```"]
    uvicorn = [p for p in groups.get(("uvicorn", CHURN), []) if p.status == "ok"]
    if uvicorn:
        acted = _sum([p.hups_acknowledged for p in uvicorn])
        sent = _sum([p.hups_sent for p in uvicorn])
        lines += [
            "",
            f"uvicorn ran `--workers {uvicorn[0].workers}`, so its multiprocess supervisor got "
            f"the SIGHUPs: {sent} sent, {acted} logged as `Received SIGHUP, restarting "
            "processes`. It serves the ASGI hello app (its WSGI adapter is deprecated).",
        ]
    return lines


def slowloris_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, SLOWLORIS)
    some = next(p for group in groups.values() for p in group)
    header = ["server", "app", "req/s clean", "req/s slowloris", "slowloris ÷ clean"]
    header += ["p99 ms clean", "p99 ms slowloris", "errors clean", "errors slowloris"]
    header += ["CPU µs/req clean", "CPU µs/req slowloris", "held during run"]
    header += ["closed by server: run / all", "answers before close", "closed after s"]
    header += ["server fds / limit", "bar", "ok/runs", "note"]
    rows: list[list[str]] = []
    bars: list[str] = []
    clients: list[str] = []
    for server_name in dict.fromkeys(name for name, _ in groups):
        server = SERVERS_BY_NAME[server_name]
        clean_group = groups.get((server_name, CLEAN), [])
        held_group = groups.get((server_name, HELD), [])
        clean = [p for p in clean_group if p.status == "ok"]
        held = [p for p in held_group if p.status == "ok"]
        windows = [p.slowloris["window"] for p in held if p.slowloris]
        rps_clean = _median([p.rps for p in clean])
        rps_held = _median([p.rps for p in held])
        ratio = rps_held / rps_clean if rps_held is not None and rps_clean else None
        bar = ""
        if server.subject and ratio is not None:
            bar = "PASS" if ratio >= SLOWLORIS_MIN_RATIO else "FAIL"
            errors = sum(p.errors or 0 for p in held)
            bars.append(
                f"- {server_name}: req/s with {SLOWLORIS_CONNECTIONS} slowloris connections ÷ "
                f"clean = {ratio:.3f} (bar: ≥ {SLOWLORIS_MIN_RATIO:.2f}, i.e. < "
                f"{(1 - SLOWLORIS_MIN_RATIO) * 100:.0f} % lost): **{bar}**; {errors} wrk errors "
                "with slowloris"
            )
        statuses: defaultdict[str, int] = defaultdict(int)
        for window in windows:
            for status, count in window["server_closes_by_status"].items():
                statuses[status] += count
        answers = ", ".join(
            f"{'no answer' if k == 'none' else k}: {v}" for k, v in sorted(statuses.items())
        )
        fds = [p for p in held if p.server_fds_max is not None]
        fd_text = "-"
        if fds:
            fd_text = f"{max(p.server_fds_max or 0 for p in fds)} / "
            fd_text += _int(
                min((p.server_fd_limit for p in fds if p.server_fd_limit), default=None)
            )
        row = [server_name, _first_app([*clean_group, *held_group])]
        row += [_fmt(rps_clean, 0), _fmt(rps_held, 0), _fmt(ratio, 3)]
        row += [
            _fmt(_median([p.latency_ms.get("p99") for p in group]), 2) for group in (clean, held)
        ]
        row += [_socket_errors(clean), _socket_errors(held)]
        row += [_fmt(_median([p.cpu_us_per_req for p in group])) for group in (clean, held)]
        if windows:
            low = min((w["open_min"] for w in windows if w["open_min"] is not None), default=None)
            high = max((w["open_max"] for w in windows if w["open_max"] is not None), default=None)
            row += [f"{_int(low)}-{_int(high)} of {SLOWLORIS_CONNECTIONS}"]
            row += [
                f"{sum(w['server_closes'] for w in windows)} / "
                f"{sum(w['server_closes_total'] for w in windows)}"
            ]
            row += [answers or "-"]
            row += [_fmt(_median([w["lifetime_median_s"] for w in windows]), 1)]
        else:
            row += ["-"] * 4
        row += [fd_text, bar, f"{len(clean)}+{len(held)}/{len(clean_group) + len(held_group)}"]
        row.append(paired_notes(clean, held, clean_group, held_group))
        rows.append(row)
        for point in held:
            client = point.slowloris
            if not client:
                continue
            counts, failed = client["counts"], client.get("connect_errors") or {}
            window = client["window"]
            run_s = window["end"] - window["start"]
            run_share = window["client_cpu_run_s"] / run_s * 100 if run_s else 0.0
            clients.append(
                f"- {server_name}: {client['ready_open']} open after a ramp of "
                f"{client['ramp_s']:.2f} s; held {client['held_s']:.1f} s; "
                f"{counts.get('connects', 0)} connects ({counts.get('reconnects', 0)} "
                "reconnects); failed connects: "
                f"{', '.join(f'{k} {v}' for k, v in failed.items()) or 'none'}; client CPU "
                f"{client['cpu_s']:.2f} s in all, {window['client_cpu_run_s']:.2f} s during "
                f"the measured run ({run_share:.1f} % of a core)"
            )
    lines = [
        f"## slowloris: wrk with and without {SLOWLORIS_CONNECTIONS} slowloris connections open",
        "",
        f"wrk -t1 -c{some.connections} -d{some.duration_s}s on the hello app, {some.workers} "
        "worker(s), a fresh server per point; per server the *clean* and *slowloris* points run "
        "back to back. *slowloris*: `slowloris.py` opens "
        f"{SLOWLORIS_CONNECTIONS} connections, each sending `GET / HTTP/1.1\\r\\nHost: x\\r\\n` "
        "and then one more byte of `X-a: b\\r\\n` per second, never ending the head, and "
        "reconnecting whenever the server closes it; they are opened before the warm-up, held "
        f"{SLOWLORIS_SOAK_S:g} s before the measured run starts and closed after it ends. The "
        f"client is pinned with the server ({meta['pinning']}; it is asleep almost all the time, "
        "its CPU use is listed below). Medians over the repeats, errors summed.",
        "",
        *_table(header, rows, left=2),
        "",
        "*errors*: wrk's non-2xx/3xx responses; socket errors connect/read/write/timeout (wrk "
        "counts a timeout only for a response that arrives more than 2 s late, and leaves it out "
        "of the latencies; a request never answered is not counted at all). *held during "
        "run*: fewest-most slowloris connections open (from the client's side: accepted, or "
        "waiting in the listen backlog) during the measured run. *closed by server*: "
        "slowloris connections the server closed during the measured run / from the ramp to the "
        "stop; *answers before close*: what the server sent before closing those during the "
        "run; *closed after*: median age of the connections the server closed. *server fds*: the "
        "most file descriptors open in one server process right after the run, and the lowest "
        "soft RLIMIT_NOFILE in its process tree (connections still in the listen backlog hold "
        "no fd of the server). A server that slowloris blocks completely shows 0 req/s, no "
        "latencies and, per the above, no wrk errors: see the note.",
    ]
    if bars:
        lines += ["", "Bar (from the issue):", "", *bars]
    if clients:
        lines += ["", "The slowloris client, per point:", "", *clients]
    nofile = meta.get("nofile") or {}
    if nofile:
        lines += [
            "",
            f"RLIMIT_NOFILE of the harness (inherited by the client and the servers): soft "
            f"{nofile['soft_before']} -> {nofile['soft']}, hard {nofile['hard']}.",
        ]
    for (server_name, variant), group in groups.items():
        if not SERVERS_BY_NAME[server_name].subject:
            continue
        problems = [x for p in group if p.status == "ok" for x in p.server_log_problems]
        if problems:
            lines += ["", f"{server_name} {variant}: warnings and errors during the run", "", "```"]
            lines += [*problems[:20], "```"]
    return lines


RELOAD_MIN_RATIO: Final = 0.90
MIXED_MAX_IDEAL_RATIO: Final = 1.2
MIXED_MAX_ANCHOR_RATIO: Final = 0.6
MIXED_ANCHORS: Final = ("gunicorn-gthread", "granian")


def _kind_median(ok: Sequence[Point], kind: str, key: str) -> float | None:
    return _median([p.openloop["run"][kind][key] for p in ok])


def openloop_section(points: list[Point], meta: dict[str, Any]) -> list[str]:
    groups = _groups(points, OPENLOOP)
    some = next(p for group in groups.values() for p in group)
    params = next((p.openloop for group in groups.values() for p in group if p.openloop), {})
    header = ["rate", "server", "fast p50 ms", "fast p99 ms", "fast p99.9 ms", "slow p50 ms"]
    header += ["slow p99 ms", "slow p99.9 ms", "fast p99 ÷ ideal", "errors", "done req/s"]
    header += ["client wait p99 ms", "generator lag p99 ms", "CPU µs/req", "ok/runs", "note"]
    rows: list[list[str]] = []
    fast_p99: dict[tuple[str, str], float | None] = {}
    for variant in dict.fromkeys(v for _, v in groups):
        ideal = next(
            (
                p.openloop["ideal"]
                for (_, v), g in groups.items()
                if v == variant
                for p in g
                if p.openloop
            ),
            None,
        )
        ideal_p99 = ideal["fast"]["p99_ms"] if ideal else None
        fast_p99["ideal", variant] = ideal_p99
        if ideal:
            row = [variant, "**ideal dispatcher**"]
            row += [
                _fmt(ideal[k][f"p{q}_ms"], 2 if q == "50" else 1)
                for k in ("fast", "slow")
                for q in ("50", "99", "99.9")
            ]
            rows.append([*row, "1.00", "", "", "", "", "", "", "simulated"])
        for (server_name, v), group in groups.items():
            if v != variant:
                continue
            ok = [p for p in group if p.status == "ok" and p.openloop]
            row = [variant, server_name]
            row += [
                _fmt(_kind_median(ok, kind, f"p{q}_ms"), 2 if q == "50" else 1)
                for kind in ("fast", "slow")
                for q in ("50", "99", "99.9")
            ]
            p99 = fast_p99[server_name, variant] = _kind_median(ok, "fast", "p99_ms")
            row.append(_fmt(p99 / ideal_p99, 2) if p99 is not None and ideal_p99 else "-")
            row += [_int(_sum([p.errors for p in ok])) if ok else "-"]
            row += [_fmt(_median([p.rps for p in ok]), 0)]
            row += [_fmt(_kind_median(ok, "client_wait", "p99_ms"), 1)]
            row += [_fmt(_kind_median(ok, "generator_lag", "p99_ms"), 2)]
            row += [_fmt(_median([p.cpu_us_per_req for p in ok]))]
            row += [f"{len(ok)}/{len(group)}", _errors_note(ok, group)]
            rows.append(row)
    ideal_params = params.get("ideal", {})
    service = ideal_params.get("service_ms", {})
    run_params = params.get("params", {})
    lines = [
        "## mixed: open-loop Poisson arrivals, fast (1 ms) and slow (50 ms) requests",
        "",
        f"`openloop.py`: {some.connections} keep-alive connections, "
        f"{_fmt(run_params.get('slow_fraction', 0.1) * 100, 0)} % slow requests, seed "
        f"{meta['seed']} (the same arrival times and fast/slow sequence for every server), "
        f"{some.duration_s} s per rate; {some.workers} workers x 1 thread everywhere. Latency runs "
        "from each request's *scheduled* send time to the end of its response, so waiting for an "
        "idle connection (*client wait*) counts. *ideal dispatcher*: one FIFO queue in front of "
        f"{ideal_params.get('servers', '?')} slots, fed the same arrivals, service times "
        f"{_fmt(service.get('fast'), 2)} ms / {_fmt(service.get('slow'), 2)} ms (nominal + "
        f"{_fmt(ideal_params.get('overhead_ms'), 2)} ms measured sleep overshoot; see "
        "openloop.py). *generator lag*: how late the generator itself released requests; "
        "well above 1 ms means the load generator was starved and the point is suspect.",
        "",
        *_table(header, rows),
    ]
    bars = _mixed_bars(fast_p99, list(dict.fromkeys(v for _, v in groups)))
    if bars:
        lines += ["", "Bars (from the issue):", "", *bars]
    return lines


def _errors_note(ok: Sequence[Point], group: Sequence[Point]) -> str:
    kinds: defaultdict[str, int] = defaultdict(int)
    retried = 0
    for point in ok:
        run = point.openloop["run"]
        retried += run["retried_stale_connections"]
        for kind, count in run["errors_by_kind"].items():
            kinds[kind] += count
    notes = [f"{kind}: {count}" for kind, count in kinds.items()]
    if retried:
        notes.append(f"{retried} retried on a stale keep-alive connection")
    return "; ".join(filter(None, [*notes, group_notes(group)]))


def _mixed_bars(fast_p99: dict[tuple[str, str], float | None], variants: list[str]) -> list[str]:
    bars = []
    subjects = [s.name for s in SERVERS if s.subject]
    for subject in subjects:
        for variant in variants:
            mine, ideal = fast_p99.get((subject, variant)), fast_p99.get(("ideal", variant))
            if mine is None or not ideal:
                continue
            ratio = mine / ideal
            verdict = "PASS" if ratio <= MIXED_MAX_IDEAL_RATIO else "FAIL"
            bars.append(
                f"- {variant}: {subject} fast p99 {mine:.1f} ms = {ratio:.2f}x the ideal's "
                f"{ideal:.1f} ms (bar: ≤ {MIXED_MAX_IDEAL_RATIO}x): **{verdict}**"
            )
        if not variants:
            continue
        lowest = min(variants, key=variant_rate)  # the 170 req/s
        mine = fast_p99.get((subject, lowest))
        for anchor in MIXED_ANCHORS:
            theirs = fast_p99.get((anchor, lowest))
            if mine is None or not theirs:
                continue
            ratio = mine / theirs
            verdict = "PASS" if ratio <= MIXED_MAX_ANCHOR_RATIO else "FAIL"
            bars.append(
                f"- {lowest}: {subject} fast p99 {mine:.1f} ms = {ratio:.2f}x {anchor}'s "
                f"{theirs:.1f} ms (bar: ≤ {MIXED_MAX_ANCHOR_RATIO}x): **{verdict}**"
            )
    return bars


def _ok(group: Sequence[Point]) -> list[Point]:
    return [p for p in group if p.status == "ok"]
