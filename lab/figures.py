"""
The `figure` fixture: measurements the lab's tests report (docs/reliability.md),
printed in a "figures" section at the end of the run and written as JSON lines
to $FIGURES_FILE when it is set. A pytest plugin (the root conftest.py loads it).
"""

import json
import os
from collections.abc import Callable

import pytest

# --- Figures -----------------------------------------------------------------

# Measurements the reliability tests report (docs/reliability.md): printed in a
# "figures" section at the end of the run, and written as JSON lines to
# $FIGURES_FILE when it is set.
_FIGURES: list[dict] = []


@pytest.fixture
def figure(request) -> Callable:
    """figure("handshakes refused", "20 of 20") records one measured figure."""

    def record(name: str, value: object) -> None:
        _FIGURES.append({"test": request.node.nodeid, "name": name, "value": value})

    return record


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("figures")
    for item in _FIGURES:
        terminalreporter.write_line(f"{item['test']}: {item['name']}: {item['value']}")
    path = os.environ.get("FIGURES_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            for item in _FIGURES:
                out.write(json.dumps(item, default=str) + "\n")
