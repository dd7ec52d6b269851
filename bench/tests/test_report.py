"""
What docs/benchmarks.md says of a target against the tutorial
(bench.report.baseline_figures): a ratio when the tutorial sustained a step,
and a bound, not "n/a", when it held not even its lowest.
"""

from bench import report


def step(target: str, deliveries: int, sustained: bool) -> dict:
    return {"target": target, "scenario": "fanout-200",
            "offered_deliveries": deliveries, "sustained": sustained}  # fmt: skip


def figures(rows: list[dict], value: float | None):
    return report.baseline_figures(rows, "fanout-200", "offered_deliveries", value)


def test_the_ratio_is_to_the_highest_step_the_tutorial_sustained():
    rows = [
        step("tutorial-redis", 500, True),
        step("tutorial-redis", 1000, True),
        step("tutorial-redis", 2000, False),
    ]
    assert figures(rows, 4000) == (1000, "4.00x")


def test_a_tutorial_that_held_no_step_gives_a_lower_bound():
    rows = [
        step("tutorial-redis", 500, False),
        step("tutorial-redis", 250, False),
        step("project", 4000, True),
    ]
    assert figures(rows, 4000) == ("< 250", "> 16.00x")


def test_no_tutorial_steps_and_no_project_figure_give_no_ratio():
    assert figures([], 4000) == (None, "n/a")
    assert figures([step("tutorial-redis", 250, False)], None) == ("< 250", "n/a")


def rooms(target: str, rate: int, sustained: bool) -> dict:
    return {"target": target, "scenario": "rooms", "offered_rate": rate,
            "sustained": sustained}  # fmt: skip


def test_the_statement_is_measured_against_its_orm_twin_in_the_same_run():
    rows = [
        rooms("project", 400, True),
        rooms("project", 800, False),
        rooms("project-orm", 200, True),
        rooms("project-orm", 400, False),
    ]
    [line, _] = report.statement_against_orm(rows)
    assert "sustained 400 messages a second with the hand-written statement" in line
    assert "200 with the ORM's transaction" in line and line.endswith(": 2.00x.")


def test_an_orm_twin_that_held_no_step_gives_a_bound():
    rows = [rooms("project", 400, True), rooms("project-orm", 50, False)]
    [line, _] = report.statement_against_orm(rows)
    assert "less than 50 with the ORM's transaction" in line
    assert line.endswith("more than 8.00x.")
    assert report.statement_against_orm([rooms("project", 400, True)]) == []
