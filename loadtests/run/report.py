"""The markdown report, the results files, the chart and the docs snapshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from loadtests.run.bars import bars_section, evaluate_bars
from loadtests.run.common import HERE, REPO_ROOT, VENV_BIN, Point, log, tail
from loadtests.run.idle_report import idle_section, startup_section
from loadtests.run.scenarios import (
    IDLE,
    OPENLOOP,
    RELOAD,
    SCENARIOS_BY_NAME,
    SLOWLORIS,
    STARTUP,
    WRK,
)
from loadtests.run.sections import openloop_section, reload_section, slowloris_section
from loadtests.run.tables import Summary, _load_range, wrk_table


def markdown(
    summaries: list[Summary],
    points: list[Point],
    meta: dict[str, Any],
    *,
    chart: str = "",
    for_docs: bool = False,
) -> str:
    """The run's report; ``chart``: the PNG's path relative to the report, if one was drawn.

    ``for_docs`` (the committed snapshot): no title, failures by their reason only (no logs).
    """
    lines = [
        f"# swserve load test: {meta['label']}",
        "",
        f"{meta['started']} · {meta['cpus']} CPUs · pinning {meta['pinning']}",
        "",
        f"1-minute load average before the runs: {_load_range(points)} "
        "(above the CPU count, other work on the machine disturbed the numbers)",
    ]
    if for_docs:
        lines = lines[4:]
    lines += ["", *bars_section(evaluate_bars(summaries, points))]
    if chart:
        lines += ["", f"![req/s and CPU µs per request per scenario and server]({chart})"]
    if summaries or not any(SCENARIOS_BY_NAME[p.scenario].kind != WRK for p in points):
        lines += ["", *wrk_table(summaries, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == RELOAD for p in points):
        lines += ["", *reload_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == OPENLOOP for p in points):
        lines += ["", *openloop_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == SLOWLORIS for p in points):
        lines += ["", *slowloris_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == IDLE for p in points):
        lines += ["", *idle_section(points, meta)]
    if any(SCENARIOS_BY_NAME[p.scenario].kind == STARTUP for p in points):
        lines += ["", *startup_section(points, meta)]
    if not for_docs:  # the snapshot gives them with the machine
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
        lines += ["", f"versions: {versions}"]
    if meta.get("interrupted"):
        lines += ["", f"**Interrupted ({meta['interrupted']}): the run is incomplete.**"]
    first_failures: dict[tuple[str, str, str], Point] = {}
    for point in points:
        if point.status != "ok":
            first_failures.setdefault((point.scenario, point.server, point.variant), point)
    if first_failures and for_docs:
        lines += ["", "## Failed or skipped points (the first of each)", ""]
        lines += [
            f"- {p.server} / {p.scenario} {p.variant}: {p.status}: {p.reason.splitlines()[0]}"
            for p in first_failures.values()
        ]
    elif first_failures:
        lines += ["", "## Failed or skipped points (the first of each)", ""]
        for point in first_failures.values():
            variant = f" {point.variant}" if point.variant else ""
            lines += [f"### {point.server} / {point.scenario}{variant}: {point.status}", "", "```"]
            lines.append(point.reason)
            if point.server_log_tail:
                lines += ["--- server output (tail) ---", tail(point.server_log_tail, 15)]
            lines += ["```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_results(
    output_dir: Path, meta: dict[str, Any], summaries: list[Summary], points: list[Point]
) -> tuple[Path, str, Path | None]:
    """Write the JSON, draw the chart next to it, and write the markdown report.

    Returns:
        The JSON's path, the report, and the PNG's path (None if none could be drawn).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{meta['label']}.json"
    payload = {
        "meta": meta,
        "summary": [asdict(s) for s in summaries],
        "points": [asdict(p) for p in points],
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    png_path = json_path.with_suffix(".png")
    chart_ok = any(s.rps for s in summaries) and render_chart(json_path, png_path)
    report = markdown(summaries, points, meta, chart=png_path.name if chart_ok else "")
    json_path.with_suffix(".md").write_text(report)
    return json_path, report, png_path if chart_ok else None


CHART_SCRIPT: Final = HERE / "chart.py"
CHART_TIMEOUT_S: Final = 120


def render_chart(json_path: Path, png_path: Path) -> bool:
    """Draw the PNG with chart.py under the anchors venv (it has matplotlib); False on failure.

    A chart that cannot be drawn (no venv, matplotlib missing with ``--no-install``) costs the
    run nothing but the picture: the reason is logged.
    """
    python = VENV_BIN / "python"
    if not python.exists():
        log(f"no chart: {python} not found")
        return False
    try:
        result = subprocess.run(
            [str(python), str(CHART_SCRIPT), str(json_path), str(png_path)],
            capture_output=True,
            text=True,
            timeout=CHART_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log(f"no chart: chart.py did not finish within {CHART_TIMEOUT_S} s")
        return False
    if result.returncode != 0:
        log(f"no chart: chart.py failed: {tail(result.stderr or result.stdout, 3)}")
        return False
    return True


DOCS_PAGE: Final = REPO_ROOT / "docs" / "benchmarks.md"
DOCS_CHART: Final = REPO_ROOT / "docs" / "benchmarks.png"
SNAPSHOT_BEGIN: Final = (
    "<!-- snapshot: begin (written by python3 -m loadtests.run --write-docs) -->"
)
SNAPSHOT_END: Final = "<!-- snapshot: end -->"


def write_docs(
    meta: dict[str, Any], summaries: list[Summary], points: list[Point], png: Path | None
) -> None:
    """Replace the snapshot in docs/benchmarks.md, between its markers, and docs/benchmarks.png.

    The prose around the markers is the maintainers' and is kept as it is.

    Raises:
        SystemExit: the page has no snapshot markers.
    """
    page = DOCS_PAGE.read_text()
    if SNAPSHOT_BEGIN not in page or SNAPSHOT_END not in page:
        raise SystemExit(
            f"{DOCS_PAGE} has no snapshot markers ({SNAPSHOT_BEGIN} ... {SNAPSHOT_END})"
        )
    before, rest = page.split(SNAPSHOT_BEGIN, 1)
    after = rest.split(SNAPSHOT_END, 1)[1]
    if png is not None:
        shutil.copyfile(png, DOCS_CHART)
    report = markdown(summaries, points, meta, chart=DOCS_CHART.name if png else "", for_docs=True)
    report = re.sub(r"^(#+) ", r"\1# ", report, flags=re.M)  # under the snapshot's heading
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    snapshot = [
        SNAPSHOT_BEGIN,
        "",
        f"## Snapshot: {meta['started']}",
        "",
        f"Produced by `{meta['command']}`.",
        "",
        f"Machine: {meta['cpus']} CPUs (affinity {meta['affinity']}), {meta['platform']}, "
        f"Python {meta['python']}. Pinning: {meta['pinning']}. Versions: {versions}.",
        "",
        report.rstrip(),
        "",
        SNAPSHOT_END,
    ]
    DOCS_PAGE.write_text(before + "\n".join(snapshot) + after)
    log(f"wrote {DOCS_PAGE}" + (f" and {DOCS_CHART}" if png else " (no chart)"))
