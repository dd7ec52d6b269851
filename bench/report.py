"""
docs/benchmarks.md and its plots from one run's results: every figure in a
table, the ratios the targets are stated in, the machine and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.targets import all_targets

# The targets in the order make bench runs them, each with its label.
LABELS = {target.name: target.label for target in all_targets()}
TARGET_ORDER = list(LABELS)


# Written after the tables: what the figures come from and what moves them.
NOTES = ("LEVERS.md", "METHOD.md")


def machine() -> dict:
    def command_version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not found"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        ),
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in (
                "Django",
                "channels",
                "daphne",
                "channels-redis",
                "redis",
                "gunicorn",
                "psycopg",
                "websockets",
                "Twisted",
            )
        },
        "redis_server": command_version(["redis-server", "--version"]),
        "postgresql": command_version(["psql", "--version"]),
        "wrk": command_version(["wrk", "--version"]),
    }


def steps_of(rows: list[dict], target: str, scenario: str) -> list[dict]:
    return [r for r in rows if r.get("target") == target and r["scenario"] == scenario]


def best(rows: list[dict], target: str, scenario: str, key: str) -> float | None:
    passing = [r[key] for r in steps_of(rows, target, scenario) if r["sustained"]]
    return max(passing) if passing else None


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def lowest_tried(
    rows: list[dict], target: str, scenario: str, key: str
) -> float | None:
    tried = [r[key] for r in steps_of(rows, target, scenario)]
    return min(tried) if tried else None


NOT_QUOTED = "not quoted: the baseline failed its lowest step"


def baseline_figures(
    rows: list[dict],
    scenario: str,
    key: str,
    value: float | None,
    baseline: str = "tutorial-redis",
) -> tuple[str | float | None, str]:
    """A baseline's sustained load and the ratio to it. A baseline that did
    not sustain its lowest step (the first counted one, after the discarded
    warm-up) measured that run's trouble, not the target: whatever it held
    below it, found by bisecting, is shown and flagged, and no ratio to it is
    quoted."""
    steps = steps_of(rows, baseline, scenario)
    if not steps:
        return None, "n/a"
    lowest = steps[0][key]
    held = best(rows, baseline, scenario, key)
    if any(row["sustained"] for row in steps if row[key] == lowest):
        return held, ratio(value, held)
    shown = f"{held:g}" if held is not None else "none"
    return f"{shown} (failed its lowest step, {lowest:g})", NOT_QUOTED


def table(headers: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += [
        "| " + " | ".join("" if v is None else str(v) for v in line) + " |"
        for line in lines
    ]
    return "\n".join(out)


def attempt_rank(row: dict) -> tuple[bool, float]:
    """Sustained attempts first, then the lower p99."""
    return (not row["sustained"], row["p99_ms"])


def plotted(rows: list[dict], target: str, scenario: str, x_key: str) -> list[dict]:
    """One point per offered load: a step run twice (bench/run.py retries a
    failed one) is drawn by the attempt that decided it."""
    chosen: dict[float, dict] = {}
    for row in steps_of(rows, target, scenario):
        if row["p99_ms"] is None:
            continue
        kept = chosen.get(row[x_key])
        if kept is None or attempt_rank(row) < attempt_rank(kept):
            chosen[row[x_key]] = row
    return sorted(chosen.values(), key=lambda row: row[x_key])


def plot(rows: list[dict], scenario: str, x_key: str, path: Path, xlabel: str) -> bool:
    figure, axis = plt.subplots(figsize=(8, 4.5))
    drawn = False
    for target in TARGET_ORDER:
        points = plotted(rows, target, scenario, x_key)
        if points:
            axis.plot(
                [r[x_key] for r in points],
                [r["p99_ms"] for r in points],
                marker="o",
                label=LABELS[target],
            )
            drawn = True
    axis.axhline(100, color="grey", linestyle="--", linewidth=1, label="p99 = 100 ms")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("delivery latency p99 (ms)")
    axis.set_title(scenario)
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return drawn


# The rooms scenario run again with one way of storing messages changed: what
# the project's way gains, in the same run. Target -> (what is compared, the
# project's way, the other way).
WRITE_VARIANTS = {
    "project-orm": (
        "Message writes (`chat/managers.py`)",
        "with the hand-written statement",
        "with the ORM's transaction (`CHAT_MESSAGE_WRITE=orm`)",
    ),
    "project-unbatched": (
        "Messages stored together (`chat/writes.py`)",
        "with the messages that waited stored together",
        "with each stored alone (`CHAT_MESSAGE_BATCH_SIZE=1`)",
    ),
}


def write_variants(rows: list[dict]) -> list[str]:
    """The one hand-written statement (chat/managers.py) and the group commit
    (chat/writes.py) earn their places by these lines: the rooms scenario with
    each, and without it."""
    lines = []
    ours = best(rows, "project", "rooms", "offered_rate")
    for target, (what, our_way, other_way) in WRITE_VARIANTS.items():
        if not steps_of(rows, target, "rooms"):
            continue
        other = best(rows, target, "rooms", "offered_rate")
        if other is None:
            floor = lowest_tried(rows, target, "rooms", "offered_rate")
            other_text, gain = f"less than {floor:g}", f"more than {ratio(ours, floor)}"
        else:
            other_text, gain = f"{other:g}", ratio(ours, other)
        lines += [
            f"{what}: in the rooms scenario one Daphne process sustained {ours} "
            f"messages a second {our_way}, {other_text} {other_way}: {gain}.",
            "",
        ]
    return lines


def write(results: dict, output: Path) -> Path:
    rows, info = results["rows"], results["machine"]
    plots = output / "benchmarks"
    plots.mkdir(parents=True, exist_ok=True)
    md = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({results['plan']} run) on {info['date']}. "
        "Every figure below comes from this one run on this one machine; "
        "ratios compare targets measured side by side. The method and the "
        "scenarios are described at the end.",
        "",
        f"Machine: {info['cpu']}, {info['memory_gib']} GiB, Python {info['python']}, "
        f"{info['redis_server']}, {info['postgresql']}, {info['wrk']}.",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()) + ".",
        "",
    ]
    from .goals import goals_table  # it uses this module's helpers

    md += goals_table(rows)
    ws_rows = [r for r in rows if r["scenario"].startswith(("fanout", "rooms"))]
    scenarios = sorted({r["scenario"] for r in ws_rows})
    md += ["## Targets", ""]
    summary = []
    for scenario in scenarios:
        key = "offered_deliveries" if scenario.startswith("fanout") else "offered_rate"
        figures = {t: best(rows, t, scenario, key) for t in TARGET_ORDER}
        for target in ("project", "project-scaled"):
            baseline, to_baseline = baseline_figures(
                rows, scenario, key, figures[target]
            )
            ceiling, to_ceiling = baseline_figures(
                rows, scenario, key, figures[target], baseline="raw"
            )
            summary.append(
                [
                    scenario,
                    key.replace("offered_", "sustained "),
                    LABELS[target],
                    figures[target],
                    baseline,
                    to_baseline,
                    figures["tutorial-pubsub"],
                    ceiling,
                    to_ceiling,
                ]
            )
    md += [
        "Highest offered load each target sustained (p99 ≤ 100 ms, nothing lost, "
        "every client connected); empty when not even the lowest step was. A "
        "baseline that failed its lowest step is flagged, and no ratio to it is "
        "quoted: that step measured the run's trouble, not the baseline.",
        "",
        table(
            [
                "scenario",
                "measure",
                "chatroom",
                "sustained",
                "tutorial (Redis layer)",
                "chatroom / tutorial",
                "tutorial (pub/sub)",
                "raw ceiling",
                "chatroom / ceiling",
            ],
            summary,
        ),
        "",
    ]
    md += write_variants(rows)
    http_rows = [r for r in rows if r["scenario"] == "http"]
    if http_rows:
        by = {(r["server"], r["endpoint"]): r for r in http_rows}
        api = by.get(("gunicorn sync", "history API"), {}).get("requests_per_s")
        view = by.get(("gunicorn sync", "minimal view"), {}).get("requests_per_s")
        logged_in = by.get(("gunicorn sync", "minimal view, logged in"), {}).get(
            "requests_per_s"
        )
        md += [
            f"History API under gunicorn (sync): {api} req/s, against {view} for "
            f"the minimal view: {ratio(api, view)}; against {logged_in} for the "
            f"minimal view that loads the session's user, as every API request "
            f"must: {ratio(api, logged_in)} (target: 0.80x or more).",
            "",
        ]
    for scenario in scenarios:
        key = "offered_deliveries" if scenario.startswith("fanout") else "offered_rate"
        name = f"{scenario}.png"
        label = (
            "offered deliveries per second"
            if key == "offered_deliveries"
            else "offered messages per second (all rooms)"
        )
        if plot(rows, scenario, key, plots / name, label):
            md += [f"![{scenario}: p99 latency against load](benchmarks/{name})", ""]
    md += ["## WebSocket steps", ""]
    columns = [
        "target",
        "scenario",
        "offered_rate",
        "offered_deliveries",
        "attempt",
        "connected",
        "failed",
        "sent",
        "delivered",
        "lost",
        "duplicated",
        "out_of_order",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "deliveries_per_s",
        "cpu_percent",
        "peak_rss_mb",
        "redis_cpu_percent",
        "sustained",
    ]
    md += [table(columns, [[r.get(c) for c in columns] for r in ws_rows]), ""]
    for scenario, columns in (
        (
            "idle",
            [
                "target",
                "sockets",
                "connected",
                "failed",
                "rss_before_mb",
                "rss_holding_mb",
                "kb_per_socket",
                "handshake_p50_ms",
                "handshake_p99_ms",
                "handshakes_per_s",
                "idle_cpu_percent",
            ],
        ),
        (
            "churn",
            [
                "target",
                "clients_per_wave",
                "waves",
                "rss_baseline_mb",
                "rss_after_waves_mb",
            ],
        ),
        (
            "redis",
            ["command", "clients", "pipeline", "requests_per_s", "p99_ms"],
        ),
        (
            "http",
            [
                "server",
                "endpoint",
                "requests_per_s",
                "p99_ms",
                "non_2xx",
                "server_cpu_percent",
                "cpu_ms_per_request",
            ],
        ),
    ):
        chosen = [r for r in rows if r["scenario"] == scenario]
        if chosen:
            md += [
                f"## {scenario}",
                "",
                table(columns, [[r.get(c) for c in columns] for r in chosen]),
                "",
            ]
    md += [(Path(__file__).parent / name).read_text() for name in NOTES]
    path = output / "benchmarks.md"
    path.write_text("\n".join(md))
    return path


def main() -> None:
    """Rewrite docs/benchmarks.md from a saved run: python -m bench.report FILE."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path, help="a bench/results/*.json file")
    parser.add_argument("--output", type=Path, default=Path("docs"))
    args = parser.parse_args()
    print(write(json.loads(args.results.read_text()), args.output))


if __name__ == "__main__":
    main()
