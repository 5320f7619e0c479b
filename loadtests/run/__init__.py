"""Benchmark swserve against uvicorn, gunicorn and granian on the same apps, with wrk.

Responsibilities:
  * keep a separate virtualenv (``loadtests/.venv-anchors/``) with the anchor servers and an
    editable install of swserve, so nothing here depends on the developer's own environment;
  * start each server on 127.0.0.1 in its own session, wait for a real HTTP answer (never a fixed
    sleep), drive it with wrk, and stop the whole process group afterwards (TERM, then KILL);
  * measure the CPU time of the server's whole process tree (from /proc) so that each point
    carries CPU µs per request beside requests per second;
  * write every raw point as JSON, and a markdown summary, into ``loadtests/results/``.

It must not talk to anything but 127.0.0.1, run without a time bound, or leave a server behind:
every server is stopped in a ``finally``, also on Ctrl-C, SIGTERM and errors.

Only the standard library is used, so any Python 3.11 can run ``python3 -m loadtests.run``
(from the repository root).

The modules, bottom up: ``common`` (paths, limits, a point's fields), ``servers`` and
``scenarios`` (the two tables), ``settings``, ``anchors`` (the venv), ``procs`` (/proc CPU,
process groups, pinning, readiness, wrk), ``measure`` and ``held`` (one point), ``plan`` (the
loop over points), ``tables``, ``sections``, ``idle_report``, ``bars`` and ``report`` (the
markdown), ``cli``.  This file re-exports their public names for the other load tests
(``from loadtests.run import X``).
"""

from __future__ import annotations

from loadtests.run.anchors import (
    compile_checkout as compile_checkout,
    ensure_venv as ensure_venv,
    installed_versions as installed_versions,
    pip_install as pip_install,
    server_env as server_env,
)
from loadtests.run.bars import (
    RATIO_BARS as RATIO_BARS,
    Bar as Bar,
    bars_section as bars_section,
    evaluate_bars as evaluate_bars,
)
from loadtests.run.cli import (
    held_connections as held_connections,
    list_tables as list_tables,
    load_results as load_results,
    main as main,
    parse_args as parse_args,
    raise_nofile_limit as raise_nofile_limit,
    report_again as report_again,
)
from loadtests.run.common import (
    ANCHOR_REQUIREMENTS as ANCHOR_REQUIREMENTS,
    CLI_REJECTED_RE as CLI_REJECTED_RE,
    HERE as HERE,
    HOST as HOST,
    INSTALL_STAMP as INSTALL_STAMP,
    LOG_TAIL_LINES as LOG_TAIL_LINES,
    PIP_TIMEOUT_S as PIP_TIMEOUT_S,
    POLL_INTERVAL_S as POLL_INTERVAL_S,
    PROBE_TIMEOUT_S as PROBE_TIMEOUT_S,
    READY_TIMEOUT_S as READY_TIMEOUT_S,
    REPO_ROOT as REPO_ROOT,
    REPORTED_PACKAGES as REPORTED_PACKAGES,
    RESULTS_DIR as RESULTS_DIR,
    STOP_GRACE_S as STOP_GRACE_S,
    VENV_BIN as VENV_BIN,
    VENV_CREATE_TIMEOUT_S as VENV_CREATE_TIMEOUT_S,
    VENV_DIR as VENV_DIR,
    WRK_SLACK_S as WRK_SLACK_S,
    Point as Point,
    PointError as PointError,
    StopRequestedError as StopRequestedError,
    WrkResult as WrkResult,
    log as log,
    tail as tail,
)
from loadtests.run.held import (
    HeldClient as HeldClient,
    IdleRun as IdleRun,
    Memory as Memory,
    SlowlorisRun as SlowlorisRun,
    record_failure as record_failure,
    slowloris_window as slowloris_window,
    tree_fds as tree_fds,
    tree_memory as tree_memory,
)
from loadtests.run.idle_report import (
    IdleFigures as IdleFigures,
    groups_servers as groups_servers,
    idle_figures as idle_figures,
    idle_section as idle_section,
    mixed_fast_p99 as mixed_fast_p99,
    startup_section as startup_section,
)
from loadtests.run.measure import (
    MAX_PROBLEM_LINES as MAX_PROBLEM_LINES,
    PROBLEM_RE as PROBLEM_RE,
    HupSender as HupSender,
    idle_window as idle_window,
    measure as measure,
    measure_idle as measure_idle,
    measure_openloop as measure_openloop,
    measure_slowloris as measure_slowloris,
    problem_lines as problem_lines,
    read_server_log as read_server_log,
    run_openloop as run_openloop,
    served as served,
)
from loadtests.run.plan import (
    PlanItem as PlanItem,
    describe_point as describe_point,
    make_plan as make_plan,
    run_plan as run_plan,
)
from loadtests.run.procs import (
    CLOCK_TICKS as CLOCK_TICKS,
    WRK_LATENCY_RE as WRK_LATENCY_RE,
    WRK_NON_2XX_RE as WRK_NON_2XX_RE,
    WRK_REQUESTS_RE as WRK_REQUESTS_RE,
    WRK_RPS_RE as WRK_RPS_RE,
    WRK_SOCKET_RE as WRK_SOCKET_RE,
    WRK_UNITS_MS as WRK_UNITS_MS,
    Pinning as Pinning,
    ProcStat as ProcStat,
    free_port as free_port,
    group_alive as group_alive,
    http_status as http_status,
    parse_wrk as parse_wrk,
    process_description as process_description,
    read_stats as read_stats,
    run_wrk as run_wrk,
    session as session,
    signals_blocked as signals_blocked,
    stop_group as stop_group,
    tree_cpu as tree_cpu,
    tree_ticks as tree_ticks,
    wait_ready as wait_ready,
)
from loadtests.run.report import (
    CHART_SCRIPT as CHART_SCRIPT,
    CHART_TIMEOUT_S as CHART_TIMEOUT_S,
    DOCS_CHART as DOCS_CHART,
    DOCS_PAGE as DOCS_PAGE,
    SNAPSHOT_BEGIN as SNAPSHOT_BEGIN,
    SNAPSHOT_END as SNAPSHOT_END,
    markdown as markdown,
    render_chart as render_chart,
    write_docs as write_docs,
    write_results as write_results,
)
from loadtests.run.scenarios import (
    APPS as APPS,
    BASELINE as BASELINE,
    CHURN as CHURN,
    CLEAN as CLEAN,
    FD_TROUBLE_RE as FD_TROUBLE_RE,
    FULL as FULL,
    HELD as HELD,
    HUP_INTERVAL_S as HUP_INTERVAL_S,
    IDLE as IDLE,
    IDLE_CONNECTIONS as IDLE_CONNECTIONS,
    IDLE_MIN_RATIO as IDLE_MIN_RATIO,
    IDLE_RAMP_TIMEOUT_S as IDLE_RAMP_TIMEOUT_S,
    IDLE_ROOM as IDLE_ROOM,
    IDLE_RSS_BASE_KIB as IDLE_RSS_BASE_KIB,
    IDLE_RSS_PER_CONN_KIB as IDLE_RSS_PER_CONN_KIB,
    IDLE_SCRIPT as IDLE_SCRIPT,
    MAX_REQUESTS as MAX_REQUESTS,
    MIXED_LUA as MIXED_LUA,
    OPENLOOP as OPENLOOP,
    OPENLOOP_RATES as OPENLOOP_RATES,
    OPENLOOP_SCRIPT as OPENLOOP_SCRIPT,
    OPENLOOP_SEED as OPENLOOP_SEED,
    OPENLOOP_TIMEOUT_S as OPENLOOP_TIMEOUT_S,
    OPENLOOP_WARMUP_RATE as OPENLOOP_WARMUP_RATE,
    POST_1MIB_LUA as POST_1MIB_LUA,
    QUICK as QUICK,
    RECYCLE as RECYCLE,
    RELOAD as RELOAD,
    SCENARIOS as SCENARIOS,
    SCENARIOS_BY_NAME as SCENARIOS_BY_NAME,
    SLOWLORIS as SLOWLORIS,
    SLOWLORIS_CONNECTIONS as SLOWLORIS_CONNECTIONS,
    SLOWLORIS_MIN_RATIO as SLOWLORIS_MIN_RATIO,
    SLOWLORIS_RAMP_TIMEOUT_S as SLOWLORIS_RAMP_TIMEOUT_S,
    SLOWLORIS_SCRIPT as SLOWLORIS_SCRIPT,
    SLOWLORIS_SOAK_S as SLOWLORIS_SOAK_S,
    STARTUP as STARTUP,
    STARTUP_MAX_S as STARTUP_MAX_S,
    STARTUP_POLL_S as STARTUP_POLL_S,
    SUITES as SUITES,
    WITH as WITH,
    WITHOUT as WITHOUT,
    WRK as WRK,
    Scenario as Scenario,
    Suite as Suite,
)
from loadtests.run.sections import (
    MIXED_ANCHORS as MIXED_ANCHORS,
    MIXED_MAX_ANCHOR_RATIO as MIXED_MAX_ANCHOR_RATIO,
    MIXED_MAX_IDEAL_RATIO as MIXED_MAX_IDEAL_RATIO,
    RELOAD_MIN_RATIO as RELOAD_MIN_RATIO,
    openloop_section as openloop_section,
    reload_section as reload_section,
    slowloris_section as slowloris_section,
)
from loadtests.run.servers import (
    ASGI as ASGI,
    BOTH as BOTH,
    GUNICORN as GUNICORN,
    GUNICORN_PORT as GUNICORN_PORT,
    GUNICORN_RELOAD as GUNICORN_RELOAD,
    SERVERS as SERVERS,
    SERVERS_BY_NAME as SERVERS_BY_NAME,
    SWSERVE as SWSERVE,
    SWSERVE_PORT as SWSERVE_PORT,
    SWSERVE_RELOAD as SWSERVE_RELOAD,
    WSGI as WSGI,
    Server as Server,
)
from loadtests.run.settings import (
    Settings as Settings,
    rate_variant as rate_variant,
    variant_rate as variant_rate,
)
from loadtests.run.tables import (
    Summary as Summary,
    group_notes as group_notes,
    stopped_cleanly as stopped_cleanly,
    summarise as summarise,
    wrk_table as wrk_table,
)
