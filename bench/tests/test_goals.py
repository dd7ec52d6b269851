"""The goals table of docs/benchmarks.md (bench.goals): each goal met, not
met, or not judged when its baseline failed its lowest step."""

from bench.goals import MET, MISSED, UNKNOWN, goals_table


def fanout(target: str, scenario: str, deliveries: int, sustained: bool) -> dict:
    return {"target": target, "scenario": scenario,
            "offered_deliveries": deliveries, "sustained": sustained}  # fmt: skip


def verdicts(rows: list[dict]) -> dict[str, tuple[str, str]]:
    """goal -> (this run's figure, verdict), read back from the table."""
    text = "\n".join(goals_table(rows))
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    return {f"{c[0]} {c[1]}": (c[2], c[3]) for c in cells}


def test_ratios_to_valid_baselines_are_judged():
    rows = [
        fanout("raw", "fanout-1000", 16000, True),
        fanout("project", "fanout-1000", 8000, True),
        fanout("project-scaled", "fanout-1000", 4000, True),
        fanout("tutorial-redis", "fanout-50", 500, True),
        fanout("tutorial-redis", "fanout-50", 1000, True),
        fanout("raw", "fanout-50", 8000, True),
        fanout("project", "fanout-50", 4000, True),
        fanout("raw", "fanout-5000", 32000, True),
        fanout("project-scaled", "fanout-5000", 16000, True),
        # The goal is judged at 5,000 idle sockets, whatever else was run.
        {"scenario": "idle", "target": "project", "sockets": 10000,
         "kb_per_socket": 40, "idle_cpu_percent": 9, "handshakes_per_s": 100},
        {"scenario": "idle", "target": "project", "sockets": 5000,
         "kb_per_socket": 19.5, "idle_cpu_percent": 2, "handshakes_per_s": 300},
        {"scenario": "idle", "target": "tutorial-redis", "sockets": 5000,
         "kb_per_socket": 30, "idle_cpu_percent": 1, "handshakes_per_s": 800},
        {"scenario": "http", "server": "gunicorn sync", "endpoint": "history API",
         "requests_per_s": 450},
        {"scenario": "http", "server": "gunicorn sync",
         "endpoint": "minimal view, logged in", "requests_per_s": 900},
    ]  # fmt: skip
    seen = verdicts(rows)
    assert seen["room of 1,000, project ≥ 0.5x the raw ceiling"] == (
        "8000 against 16000: 0.50x",
        MET,
    )
    assert seen["room of 1,000, project-scaled ≥ 0.5x the raw ceiling"][1] == MISSED
    assert seen["one-room burst (50 clients) ≥ 5x the tutorial"][1] == MISSED
    assert seen["one-room burst (50 clients) ≥ 0.75x raw"] == (
        "4000 against 8000: 0.50x",
        MISSED,
    )
    assert seen["idle socket memory ≤ 20 KiB"] == ("19.5", MET)
    assert seen["idle CPU (%) no more than the tutorial's"][1] == MISSED
    assert seen["handshakes a second ≥ the tutorial's"][1] == MISSED
    assert seen["history API (gunicorn sync) ≥ 0.8x the logged-in minimal view"] == (
        "450 against 900: 0.50x",
        MISSED,
    )
    assert seen["room of 5,000, project-scaled ≥ 0.5x the raw ceiling"] == (
        "16000 against 32000: 0.50x",
        MET,
    )
    assert seen["handshakes a second ≥ the tutorial's"][0] == "300 against 800"


def test_a_baseline_that_failed_its_lowest_step_is_not_judged():
    rows = [
        fanout("tutorial-redis", "fanout-50", 500, False),
        fanout("tutorial-redis", "fanout-50", 250, True),
        fanout("project", "fanout-50", 4000, True),
    ]
    figure, verdict = verdicts(rows)["one-room burst (50 clients) ≥ 5x the tutorial"]
    assert verdict == UNKNOWN and "not quoted" in figure
