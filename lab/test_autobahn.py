"""
WebSocket protocol conformance of Daphne as deployed: the Autobahn testsuite's
fuzzing client (framing, pings, reserved bits, opcodes, fragmentation, UTF-8,
closing handshake, limits, auto-fragmentation, compression: every case group)
against an echo consumer that deploy/start-ws.sh serves with its own Daphne
command line (message and frame size limits, pings, the levers of
levers.server), so the results describe our Daphne.

It proves that every case ends as the table below says; anything else fails:

- OK, NON-STRICT or INFORMATIONAL: Autobahn's passing grades.
- UNIMPLEMENTED, 12.* and 13.*: Daphne offers no permessage-deflate.
- FAILED by design, messages over --websocket-max-message-size (64 KiB): Daphne
  drops the connection (no close frame: autobahn fails connections by drop).
- FAILED, Daphne's own bug, the empty messages 1.1.1, 1.2.1, 6.1.1, 6.1.2:
  Daphne sends no empty message (ws_protocol.handle_reply tests the payload's
  truth), so their echo never comes. 9.7.1 and 9.8.1, the same a thousand
  times, wait a minute each for it: left out. The chat never sends an empty
  frame. If a Daphne upgrade fixes this, these cases pass and the table must
  change.
"""

import os
import re
import secrets
import stat
import sys
from collections import Counter, defaultdict

import psutil
import pytest
from django.conf import settings

from tests.processes import BIN, ServerProcess, free_port

from .autobahn_suite import case_key, find_python2, install, run_fuzzing_client
from .fuzz_server import START_WS, alarming_entries, deployed_limits

pytestmark = pytest.mark.redis

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
CASES += ["12.*", "13.*"]
SLOW_EMPTY_ECHO = ["9.7.1", "9.8.1"]
EMPTY_ECHO = {"1.1.1", "1.2.1", "6.1.1", "6.1.2"}
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
NO_DEFLATE = {"12", "13"}
CHAT_APP = "chatroom.asgi:application"
ECHO_APP = "lab.autobahn_echo:application"
# Between python and its arguments in start-ws.sh: serve the echo app instead
# of the chat, every option left as the script sets it.
PYTHON_SHIM = f"""#!/usr/bin/env bash
args=("$@")
[[ "${{args[-1]}}" == {CHAT_APP} ]] || {{ echo "start-ws.sh changed: $*" >&2; exit 2; }}
args[-1]={ECHO_APP}
exec {sys.executable} "${{args[@]}}"
"""


@pytest.fixture
def python2():
    python2 = find_python2()
    if python2 is None:
        message = (
            "the Autobahn testsuite needs a Python 2.7 interpreter: set "
            "AUTOBAHN_PYTHON2, or `pyenv install 2.7.18`"
        )
        if os.environ.get("TESTS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python2


@pytest.fixture
def echo_daphne(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "python").write_text(PYTHON_SHIM)
    (shim / "python").chmod(stat.S_IRWXU)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"} | {
        "PATH": f"{shim}:{BIN}:{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "chatroom.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Each socket gets its channel on Redis, as the chat's sockets do.
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": f"autobahn-{port}",
        "DAPHNE_BIND": "127.0.0.1",
        "DAPHNE_PORT": str(port),
    }
    server = ServerProcess("daphne-echo", [str(START_WS)], port, env, tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def expected_behaviors(case: str, report: dict, max_message_bytes: int) -> set[str]:
    if case in EMPTY_ECHO:
        return {"FAILED"}
    if case.split(".")[0] in NO_DEFLATE:
        return {"UNIMPLEMENTED"}
    if payload_bytes(report["description"]) > max_message_bytes:
        return {"FAILED"}
    return PASSING


def payload_bytes(description: str) -> int:
    """The message size a limits case (9.*) announces, 0 for the others."""
    size = re.search(r"payload of length (\d+) \* 2\*\*(\d+)", description)
    return int(size[1]) * 2 ** int(size[2]) if size else 0


def test_daphne_as_deployed_passes_the_autobahn_fuzzing_client(
    python2, echo_daphne, tmp_path, figure
):
    site_dir = install(python2)
    options = psutil.Process(echo_daphne.process.pid).cmdline()
    figure("Daphne command line", " ".join(options[options.index("-m") :]))
    results = run_fuzzing_client(
        python2,
        site_dir,
        url=f"ws://127.0.0.1:{echo_daphne.port}/",
        cases=CASES,
        exclude=SLOW_EMPTY_ECHO,
        workdir=tmp_path,
    )
    limit = deployed_limits().max_message_bytes
    by_group: dict[str, Counter] = defaultdict(Counter)
    wrong, oversized, dropped = [], 0, 0
    for case in sorted(results, key=case_key):
        result, report = results[case], results[case]["report"]
        by_group[case.split(".")[0]][result["behavior"]] += 1
        expected = expected_behaviors(case, report, limit)
        if result["behavior"] not in expected:
            wrong.append(f"{case} {result['behavior']}: {report['description']}")
        if "peer dropped the TCP connection" in (report["wasNotCleanReason"] or ""):
            dropped += 1
        if payload_bytes(report["description"]) > limit:
            oversized += 1
            # Refused by Daphne's limit, not by anything else.
            assert not report["droppedByMe"] and report["remoteCloseCode"] in {
                None,
                1009,
            }, case
        elif case not in EMPTY_ECHO and result["behavior"] in PASSING:
            assert result["behaviorClose"] in {"OK", "INFORMATIONAL"}, case

    for group in sorted(by_group, key=int):
        figure(f"Autobahn group {group}", dict(by_group[group]))
    figure("Autobahn cases run", len(results))
    figure("cases over the 64 KiB message limit (FAILED by design)", oversized)
    figure("cases where Daphne dropped TCP without a close frame", dropped)
    unexpected = alarming_entries(echo_daphne.logs())
    figure("unexpected Daphne log entries", len(unexpected))
    assert not wrong, "\n".join(wrong)
    assert len(results) > 500
    assert not unexpected, "\n".join(unexpected[:10])
