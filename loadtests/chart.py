"""Draw a run's chart: req/s per scenario per server, and CPU µs per request below it.

    loadtests/.venv-anchors/bin/python loadtests/chart.py RESULT.json OUT.png

``loadtests.run`` runs this under the anchors venv's python, which has matplotlib; ``loadtests.run`` itself
stays standard-library only. The figures are the run's medians (its ``summary``: the wrk
scenarios), grouped by scenario, one bar per server in a fixed colour, on log scales (a 1 MiB
echo and a hello differ by two orders of magnitude). A missing bar is a server that does not run
that scenario, or whose points all failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to a file

import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

SERVER_COLOURS = {
    "swserve": "#1f77b4",
    "swserve-base": "#17becf",
    "uvicorn": "#ff7f0e",
    "gunicorn-sync": "#8c564b",
    "gunicorn-gthread": "#d62728",
    "granian": "#2ca02c",
}


def grouped_bars(
    ax: Axes, scenarios: list[str], servers: list[str], values: dict[tuple[str, str], float]
) -> None:
    """One group per scenario, holding only the servers measured in it, centred on its tick."""
    labelled: set[str] = set()
    for position, scenario in enumerate(scenarios):
        present = [s for s in servers if values.get((scenario, s))]
        width = 0.8 / max(len(present), 1)
        for index, server in enumerate(present):
            height = values[scenario, server]
            bars = ax.bar(
                position - 0.4 + width * (index + 0.5),
                height,
                width,
                color=SERVER_COLOURS.get(server),
                label=None if server in labelled else server,
            )
            labelled.add(server)
            ax.bar_label(bars, labels=[f"{height:,.0f}"], fontsize=6, rotation=90, padding=2)
    ax.set_xticks(range(len(scenarios)), scenarios, fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: ""))
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.margins(y=0.25)


def draw(result: dict[str, Any], out: Path) -> None:
    summary = [s for s in result["summary"] if s["rps"]]
    if not summary:
        raise SystemExit("no wrk scenario with a measured point: nothing to draw")
    scenarios = list(dict.fromkeys(s["scenario"] for s in summary))
    known = list(SERVER_COLOURS)
    servers = sorted(
        {s["server"] for s in summary}, key=lambda n: known.index(n) if n in known else 99
    )
    rps = {(s["scenario"], s["server"]): s["rps"] for s in summary}
    cpu = {(s["scenario"], s["server"]): s["cpu_us_per_req"] for s in summary}
    meta = result["meta"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(scenarios) + 3), 9))
    grouped_bars(top, scenarios, servers, rps)
    top.set_ylabel("req/s (median, log scale)")
    top.set_title("Throughput: higher is better")
    top.legend(ncol=min(len(servers), 6), fontsize=8, loc="upper center")
    grouped_bars(bottom, scenarios, servers, cpu)
    bottom.set_ylabel("server CPU µs per request (log scale)")
    bottom.set_title("Cost: lower is better")
    fig.suptitle(
        f"swserve benchmarks, {meta['started']}\n{meta['cpus']} CPUs · pinning "
        f"{meta['pinning']} · {meta['workers']} worker(s), wrk -c{meta['connections']} · medians",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: chart.py RESULT.json OUT.png", file=sys.stderr)
        return 2
    draw(json.loads(Path(argv[0]).read_text()), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
