"""
levers.server: each lever is in effect exactly when its environment variable
switches it on, and none is when none is.
"""

import json
import os
import subprocess
import urllib.request

import pytest

from levers import SWITCHES
from tests.processes import BASE_DIR, BIN, ServerProcess, free_port

pytestmark = pytest.mark.system


def levers_in_effect(tmp_path, switched_on: set[str]) -> dict[str, bool]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("LEVER_")
    } | {SWITCHES[lever]: "on" for lever in switched_on}
    port = free_port()
    server = ServerProcess(
        "daphne",
        [str(BIN / "python"), "-m", "levers.server", "-b", "127.0.0.1",
         "-p", str(port), "levers.tests.lever_probe:application"],
        port, env, tmp_path,
    )  # fmt: skip
    try:
        server.wait_ready(path="/")
        with urllib.request.urlopen(server.url, timeout=10) as response:
            return json.load(response)
    finally:
        server.stop()


def test_no_lever_is_in_effect_unless_switched_on(tmp_path):
    assert levers_in_effect(tmp_path, set()) == dict.fromkeys(SWITCHES, False)


@pytest.mark.parametrize("lever", list(SWITCHES))
def test_a_switched_on_lever_and_only_it_is_in_effect(tmp_path, lever):
    in_effect = levers_in_effect(tmp_path, {lever})
    assert in_effect == {name: name == lever for name in SWITCHES}


def test_a_switch_that_is_neither_on_nor_off_stops_it_with_a_message():
    result = subprocess.run(
        [str(BIN / "python"), "-m", "levers.server", "chatroom.asgi:application"],
        cwd=BASE_DIR, env={**os.environ, "LEVER_DISPATCH": "maybe"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "LEVER_DISPATCH must be on or off, not 'maybe'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_production_start_script_switches_every_lever_on():
    """deploy/start-ws.sh (and `make run`) runs Daphne with every lever, each
    overridable from the environment: a new lever is a decision made there."""
    script = (BASE_DIR / "deploy" / "start-ws.sh").read_text()
    assert "exec python -m levers.server" in script
    for variable in SWITCHES.values():
        assert f'export {variable}="${{{variable}:-on}}"' in script, variable
