"""
The profilers of `make bench-profile` that explain the targets out of reach, on
tiny runs so that they do not rot: a Daphne process's busiest frames under a
room's load, and who used the machine meanwhile (py-spy, psutil); the history
API's CPU split into its phases (py-spy on a gunicorn worker), an idle
socket's memory by package (tracemalloc in Daphne) and a handshake's CPU by
package (py-spy in Daphne), each against its baseline.
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


def section_starting(parts: dict[str, str], heading: str) -> str:
    """The section whose heading begins with `heading` (its figures follow)."""
    return parts[next(title for title in parts if title.startswith(heading))]


def cpu_ms(section: str, phase: str) -> float:
    """The CPU per request the section gives `phase` (a label's first words)."""
    found = re.search(rf"^\s*([\d.]+) ms  +{re.escape(phase)}", section, re.MULTILINE)
    assert found, (phase, section)
    return float(found.group(1))


def test_the_load_profile_shows_daphnes_threads_and_who_used_the_machine(tmp_path):
    report = profile(
        "bench.profile", tmp_path / "rooms.txt",
        "--rooms", "4", "--clients", "5", "--rate", "160", "--seconds", "3",
    )  # fmt: skip
    load = re.search(
        r"^# load: connected (\d+), delivered (\d+), lost (\d+)", report, re.MULTILINE
    )
    assert load, report
    connected, delivered, lost = map(int, load.groups())
    assert (connected, lost) == (20, 0) and delivered >= 2000, report

    parts = sections(report)
    machine = section_starting(parts, "the machine")
    used = {
        name: float(percent)
        for percent, name in re.findall(r"^\s*([\d.]+)%  (.+)$", machine, re.MULTILINE)
    }
    # Every message is stored, relayed through Redis and sent by Daphne to the
    # clients, who sent it: each of them worked while they sent.
    for name in ("Daphne", "load generator", "PostgreSQL", "Redis"):
        assert used[name] > 0, (name, machine)
    # No CPU second is counted twice: the groups fit in the machine's busy time,
    # give or take what separates the kernel's per-process accounting from its
    # per-tick count of the whole machine (3-5% of a core here).
    busy = float(re.search(r": ([\d.]+)% of one core busy", report).group(1))
    assert sum(used.values()) <= busy + 15, report

    loop = section_starting(parts, "event loop")
    database = section_starting(parts, "database")
    assert "ChatConsumer.chat_message" in loop, loop
    assert "message_create_many" in database, database
    # The broadcasts, sent by chat.outbox's task in a thread of their own.
    assert "_group_send" in section_starting(parts, "broadcasts"), report


def test_the_http_profile_splits_a_request_into_its_phases(tmp_path):
    report = sections(
        profile("bench.profile_http", tmp_path / "http.txt", "--seconds", "2")
    )
    history = report["history API (/api/rooms/bench-0/messages/)"]
    logged_in = report["minimal view, logged in (/bench/minimal-logged-in/)"]
    minimal = report["minimal view (/bench/minimal/)"]

    # The page itself is mostly the one this worker kept (chat/api.py): the
    # session, the user and the room are read on every request.
    for phase in ("the user's load", "the session's load", "the room's lookup"):
        assert cpu_ms(history, phase) > 0, phase
    assert cpu_ms(history, "the user's load") >= cpu_ms(history, "the session's load")
    assert cpu_ms(logged_in, "the user's load") > 0
    assert cpu_ms(logged_in, "the page") == 0
    # A view that never reads request.user loads neither session nor user.
    assert cpu_ms(minimal, "the user's load") == 0
    assert cpu_ms(minimal, "per request") < cpu_ms(history, "per request")
    # The busiest frames are listed, busiest first; the session, the user and
    # the room are each one ORM get().
    shares = [float(n) for n in re.findall(r"^\s*([\d.]+)%  \S+ \(", history, re.M)]
    assert shares and shares == sorted(shares, reverse=True), history
    assert "QuerySet.get (django/db/models/query.py" in history, history


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


def test_the_handshake_profile_splits_each_handshake_by_package(tmp_path):
    report = profile(
        "bench.profile_handshakes", tmp_path / "handshakes.txt", "--sockets", "1000"
    )
    per_handshake = dict(re.findall(r"^(the .+?): ([\d.]+) ms; ", report, re.MULTILINE))
    assert set(per_handshake) == {"the project", "the tutorial's consumer"}, report
    assert all(float(ms) > 0 for ms in per_handshake.values()), report
    by_package = sections(report)["By package, ms per handshake"]
    rows = {
        line[:22].strip(): [float(ms) for ms in re.findall(r"([\d.]+) ms", line)]
        for line in by_package.strip().splitlines()[1:]
    }
    # Both servers spend it in Daphne's stack; Django's ORM and the chat app
    # work for the project (the tutorial touches Django's settings, no more).
    for package in ("twisted", "autobahn"):
        project, tutorial = rows[package]
        assert project > 0 and tutorial > 0, (package, by_package)
    # Only the project reads the database and runs the chat app. Django's own
    # share is compared loosely: the tutorial's few samples there (settings)
    # vary from run to run, and once came to 0.13 ms against the project's 0.84.
    for package in ("psycopg", "chat"):
        project, tutorial = rows[package]
        assert project > 0 and tutorial == 0, (package, by_package)
    project_django, tutorial_django = rows["django"]
    assert project_django > 2 * tutorial_django, by_package
    assert rows.get("chat", [0, 0])[1] == 0, by_package
    project_total, tutorial_total = rows["total"]
    assert project_total == pytest.approx(float(per_handshake["the project"]), 0.05)
