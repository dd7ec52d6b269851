"""
How the sweep decides a target's highest sustained rate (bench.run.step_up)
and what the plots draw of it: a failed step is run once more before it counts
as failed, so one stall on a shared machine does not end a sweep, and a rate
failed twice stops it. The measurement is replaced by scripted outcomes, one
per attempt, so these tests need no server.
"""

import pytest

from bench import report, run
from bench.targets import Target

PLAN = run.PLANS["quick"]


@pytest.fixture
def scripted(monkeypatch):
    """Outcomes to replay, per offered rate: p99 in ms, one per attempt."""
    outcomes: dict[float, list[float]] = {}
    measured_rates: list[float] = []

    def measured(target, load):
        measured_rates.append(load.rate)
        p99 = outcomes[load.rate].pop(0) if outcomes.get(load.rate) else 10.0
        return {"failed": 0, "lost": 0, "p50_ms": p99 / 2, "p99_ms": p99,
                "cpu_percent": 50.0}  # fmt: skip

    monkeypatch.setattr(run, "measured", measured)
    monkeypatch.setattr(run, "run", lambda load: None)  # the uncounted warm-up
    return outcomes, measured_rates


def sweep(rates: list[int]) -> list[dict]:
    target = Target(name="project", protocol="chatroom", label="chatroom")
    target.ports = [1]
    return run.step_up(target, "rooms", PLAN, 1, 10, rates, lambda rate: rate)


def highest(rows: list[dict]) -> float | None:
    return report.best(rows, "project", "rooms", "offered_rate")


def test_a_step_that_fails_once_is_run_again_and_the_sweep_goes_on(scripted):
    outcomes, measured_rates = scripted
    outcomes[200] = [240.0, 30.0]  # one stall, then held
    outcomes[400] = [500.0, 450.0]  # failed twice
    outcomes[300] = [80.0]  # the bisection holds

    rows = sweep([100, 200, 400, 800])

    assert measured_rates == [100, 200, 200, 400, 400, 300]
    assert [(r["offered_rate"], r["attempt"], r["sustained"]) for r in rows] == [
        (100, 1, True),
        (200, 1, False),
        (200, 2, True),
        (400, 1, False),
        (400, 2, False),
        (300, 1, True),
    ]
    assert highest(rows) == 300


def test_a_step_that_holds_the_first_time_is_not_run_again(scripted):
    _, measured_rates = scripted
    rows = sweep([100, 200])
    assert measured_rates == [100, 200]
    assert {r["attempt"] for r in rows} == {1}
    assert highest(rows) == 200


def test_a_first_step_failed_twice_bisects_below_it(scripted):
    outcomes, measured_rates = scripted
    outcomes[100] = [150.0, 160.0]
    rows = sweep([100, 200])
    assert measured_rates == [100, 100, 50]
    assert highest(rows) == 50


def test_the_plot_draws_each_rate_once_by_the_attempt_that_decided_it(scripted):
    outcomes, _ = scripted
    outcomes[200] = [150.0, 60.0]  # failed, then held at a lower p99
    outcomes[400] = [40.0]
    rows = sweep([100, 200, 400])
    # Lost messages at a low p99: not sustained, so not the point drawn.
    rows.append({**rows[-1], "offered_rate": 800, "attempt": 1, "p99_ms": 20.0,
                 "lost": 5, "sustained": False})  # fmt: skip
    rows.append({**rows[-1], "attempt": 2, "p99_ms": 70.0, "lost": 0,
                 "sustained": True})  # fmt: skip

    points = report.plotted(rows, "project", "rooms", "offered_rate")

    assert [(r["offered_rate"], r["p99_ms"]) for r in points] == [
        (100, 10.0),
        (200, 60.0),
        (400, 40.0),
        (800, 70.0),
    ]
