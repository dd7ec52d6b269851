"""
The benchmark harness on a tiny plan (`python -m bench.run --smoke`), so that
it does not rot between `make bench` runs: every target starts, takes a load
and delivers all of it, the HTTP servers answer, and the report is written.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.targets import all_targets

BASE_DIR = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services


def test_smoke_run_measures_every_target_and_writes_the_report(tmp_path):
    if not shutil.which("wrk"):
        pytest.fail("wrk is missing: `sudo apt-get install wrk` (`make test` does it)")
    if not shutil.which("redis-benchmark"):
        pytest.fail("redis-benchmark is missing: `sudo apt-get install redis-tools`")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(tmp_path),
         "--results", str(tmp_path / "results")],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    [saved] = (tmp_path / "results").glob("*-smoke.json")
    results = json.loads(saved.read_text())
    rows = results["rows"]
    for target in (target.name for target in all_targets() if target.scenarios):
        steps = [r for r in rows if r.get("target") == target and "sent" in r]
        assert steps, target
        for step in steps:
            assert step["connected"] == step["clients"], (target, step)
            assert step["sent"] > 0 and step["delivered"] == step["expected"], step
            assert step["duplicated"] == 0, step
    # The large room runs on the project's processes and the raw ceiling only.
    large = {r["target"] for r in rows if r["scenario"] == "fanout-40"}
    assert large == {"project-scaled", "raw"}, large
    idle = {r["target"]: r for r in rows if r["scenario"] == "idle"}
    # The tutorial's RedisChannelLayer may refuse a few sockets of a connect
    # storm (its connection pool runs out): a finding, not a harness failure.
    assert idle["project"]["connected"] == idle["project"]["sockets"], idle
    assert idle["tutorial-redis"]["connected"] > 0, idle
    # The project's asgi.py under uvicorn and granian holds them too.
    for other in ("project-uvicorn", "project-granian"):
        assert idle[other]["connected"] == idle[other]["sockets"], idle
    project = idle["project"]
    assert project["handshakes_per_s"] > 0, project
    assert project["handshake_p50_ms"] <= project["handshake_p99_ms"], project
    assert all(row["idle_cpu_percent"] >= 0 for row in idle.values()), idle
    http = [r for r in rows if r["scenario"] == "http"]
    assert {r["server"] for r in http} == {
        "gunicorn sync",
        "gunicorn gthread",
        "Daphne",
        "runserver",
        "CGI",
    }
    assert all(r["requests"] > 0 and r["non_2xx"] == 0 for r in http), http

    redis = [r for r in rows if r["scenario"] == "redis"]
    assert {r["command"] for r in redis} == {"PING", "PUBLISH (one per broadcast)"}
    assert all(r["requests_per_s"] > 0 for r in redis), redis

    report = (tmp_path / "benchmarks.md").read_text()
    assert "## Targets" in report and "## Method" in report
    assert "Message writes (`chat/managers.py`)" in report
    assert list((tmp_path / "benchmarks").glob("*.png"))


def test_the_lever_runs_measure_each_configuration(tmp_path):
    """bench.levers on a tiny plan: every lever on, then one off."""
    output = tmp_path / "levers.txt"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.levers", "--clients", "5", "--rate", "4",
         "--seconds", "1", "--rounds", "1", "--levers", "dispatch",
         "--output", str(output)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = output.read_text()
    assert "| (none: every lever on) |" in table and "| dispatch |" in table
    assert table.count("| 0 |") == 2  # nothing lost in either run
