"""
The performance goals the project holds itself to, each with its figure from
one `make bench` run and whether it was met: the first table of
docs/benchmarks.md. A goal whose baseline failed its lowest step is neither
met nor missed: its ratio is not quoted (METHOD.md).
"""

from __future__ import annotations

from .report import NOT_QUOTED, baseline_figures, best, table

MET, MISSED, UNKNOWN = "met", "not met", "not measured"


def _verdict(ok: bool | None) -> str:
    return UNKNOWN if ok is None else MET if ok else MISSED


def _ratio_goal(rows, scenario, key, target, baseline, at_least) -> tuple[str, str]:
    value = best(rows, target, scenario, key)
    held, shown = baseline_figures(rows, scenario, key, value, baseline=baseline)
    if shown == NOT_QUOTED:
        return f"{value} against {held}: {NOT_QUOTED}", UNKNOWN
    if held is None:
        return "", UNKNOWN
    if not value:
        return f"none against {held:g}", MISSED
    return f"{value:g} against {held:g}: {value / held:.2f}x", _verdict(
        value / held >= at_least
    )


def _idle(rows: list[dict], target: str) -> dict:
    """The target's idle row at 5,000 sockets, the goal's figure."""
    return next(
        (
            r
            for r in rows
            if r["scenario"] == "idle"
            and r["target"] == target
            and r["sockets"] == 5000
        ),
        {},
    )


def _http(rows: list[dict], endpoint: str) -> float | None:
    return next(
        (
            r["requests_per_s"]
            for r in rows
            if r["scenario"] == "http"
            and r["server"] == "gunicorn sync"
            and r["endpoint"] == endpoint
        ),
        None,
    )


def goals_table(rows: list[dict]) -> list[str]:
    lines = []
    for target in ("project", "project-scaled"):
        figure, verdict = _ratio_goal(
            rows, "fanout-1000", "offered_deliveries", target, "raw", 0.5
        )
        lines.append(
            [f"room of 1,000, {target}", "≥ 0.5x the raw ceiling", figure, verdict]
        )
    figure, verdict = _ratio_goal(
        rows, "fanout-5000", "offered_deliveries", "project-scaled", "raw", 0.5
    )
    lines.append(
        ["room of 5,000, project-scaled", "≥ 0.5x the raw ceiling", figure, verdict]
    )
    stored = best(rows, "project", "rooms", "offered_rate")
    lines.append(
        [
            "messages stored a second, one process, 100 rooms",
            "≥ 1,000",
            stored,
            _verdict(None if stored is None else stored >= 1000),
        ]
    )
    for baseline, at_least in (("tutorial-redis", 5), ("raw", 0.75)):
        figure, verdict = _ratio_goal(
            rows, "fanout-50", "offered_deliveries", "project", baseline, at_least
        )
        lines.append(
            [
                "one-room burst (50 clients)",
                f"≥ {at_least:g}x {'the tutorial' if at_least > 1 else 'raw'}",
                figure,
                verdict,
            ]
        )
    project, tutorial = _idle(rows, "project"), _idle(rows, "tutorial-redis")
    memory = project.get("kb_per_socket")
    lines.append(
        [
            "idle socket memory",
            "≤ 20 KiB",
            memory,
            _verdict(None if memory is None else memory <= 20),
        ]
    )
    for measure, label, better in (
        ("idle_cpu_percent", "idle CPU (%)", lambda a, b: a <= b),
        ("handshakes_per_s", "handshakes a second", lambda a, b: a >= b),
    ):
        ours, theirs = project.get(measure), tutorial.get(measure)
        known = ours is not None and theirs is not None
        lines.append(
            [
                label,
                "no more than the tutorial's"
                if "cpu" in measure
                else "≥ the tutorial's",
                f"{ours} against {theirs}",
                _verdict(better(ours, theirs) if known else None),
            ]
        )
    api, view = _http(rows, "history API"), _http(rows, "minimal view, logged in")
    lines.append(
        [
            "history API (gunicorn sync)",
            "≥ 0.8x the logged-in minimal view",
            f"{api} against {view}: {api / view:.2f}x" if api and view else "",
            _verdict(api / view >= 0.8 if api and view else None),
        ]
    )
    return [
        "## Goals",
        "",
        "Each goal with this run's figure; ratios only against a baseline that "
        "sustained its lowest step in the same run.",
        "",
        table(["goal", "target", "this run", "verdict"], lines),
        "",
    ]
