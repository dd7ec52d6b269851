"""
The profilers of `make bench-profile` that explain the targets out of reach, on
tiny runs so that they do not rot: the history API's CPU split into its phases
(py-spy on a gunicorn worker), and an idle socket's memory by package
(tracemalloc in Daphne), each against its baseline.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services


def profile(module: str, output: Path, *options: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", module, "--output", str(output), *options],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output.read_text()


def sections(report: str) -> dict[str, str]:
    """The report's sections by heading, without the "## "."""
    parts = re.split(r"^## (.+)$", report, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def cpu_ms(section: str, phase: str) -> float:
    """The CPU per request the section gives `phase` (a label's first words)."""
    found = re.search(rf"^\s*([\d.]+) ms  +{re.escape(phase)}", section, re.MULTILINE)
    assert found, (phase, section)
    return float(found.group(1))


def test_the_http_profile_splits_a_request_into_its_phases(tmp_path):
    report = sections(
        profile("bench.profile_http", tmp_path / "http.txt", "--seconds", "2")
    )
    history = report["history API (/api/rooms/bench-0/messages/)"]
    logged_in = report["minimal view, logged in (/bench/minimal-logged-in/)"]
    minimal = report["minimal view (/bench/minimal/)"]

    for phase in ("the user's load", "the session's load", "the page"):
        assert cpu_ms(history, phase) > 0, phase
    assert cpu_ms(history, "the user's load") >= cpu_ms(history, "the session's load")
    assert cpu_ms(logged_in, "the user's load") > 0
    assert cpu_ms(logged_in, "the page") == 0
    # A view that never reads request.user loads neither session nor user.
    assert cpu_ms(minimal, "the user's load") == 0
    assert cpu_ms(minimal, "per request") < cpu_ms(history, "per request")
    assert "SessionStore.load" in history  # the busiest frames are listed


def test_the_memory_profile_counts_each_socket_by_package(tmp_path):
    report = profile(
        "bench.profile_memory", tmp_path / "memory.txt", "--sockets", "200"
    )
    by_package = sections(report)["By package, KB per socket"]
    rows = {
        line[:22].strip(): [float(kb) for kb in re.findall(r"([\d.]+) KB", line)]
        for line in by_package.strip().splitlines()[1:]
    }
    # A socket of either server is mostly Daphne's, Twisted's and autobahn's.
    for package in ("daphne", "twisted", "autobahn"):
        project, tutorial = rows[package]
        assert project > 0 and tutorial > 0, (package, by_package)
    # The chat app's own objects are the project's alone.
    project_chat, tutorial_chat = rows["chat"]
    assert project_chat > 0 and tutorial_chat == 0, by_package
    totals = re.findall(r"^## the .+: ([\d.]+) KB per socket, ", report, re.MULTILINE)
    assert len(totals) == 2 and all(float(kb) > 1 for kb in totals), report
