"""levers.memory: the Daphne process's garbage collector thresholds, and
memory handed back to the system once a wave of sockets has closed."""

import collections
import gc
import json
import logging
import time
from contextlib import ExitStack

import pytest

from levers.memory import GC_THRESHOLDS, FreedMemoryReturner, install, malloc_trim
from tests.processes import BIN, ServerProcess, free_port
from tests.webclient import sign_up

from .servers import leaving_room, open_sockets, server_env


class Trims:
    def __init__(self, fail: bool = False) -> None:
        self.count, self.fail = 0, fail

    def __call__(self) -> None:
        self.count += 1
        if self.fail:
            raise OSError("no")


def test_memory_is_handed_back_once_sockets_stop_closing():
    trims = Trims()
    returner = FreedMemoryReturner(trim=trims)
    for _ in range(3):
        returner.socket_closed()
    returner.tick()
    returner.socket_closed()  # a storm of disconnects goes on
    returner.tick()
    assert trims.count == 0

    returner.tick()  # an interval without a closed socket
    assert trims.count == 1
    returner.tick()
    returner.tick()
    assert trims.count == 1  # nothing freed since


def test_nothing_closed_nothing_trimmed():
    trims = Trims()
    returner = FreedMemoryReturner(trim=trims)
    for _ in range(5):
        returner.tick()
    assert trims.count == 0


def test_a_failed_trim_is_logged_and_the_next_wave_trims_again(caplog):
    trims = Trims(fail=True)
    returner = FreedMemoryReturner(trim=trims)
    with caplog.at_level(logging.ERROR, logger="levers.memory"):
        for _ in range(2):
            returner.socket_closed()
            returner.tick()
            returner.tick()
    assert trims.count == 2
    assert "malloc_trim failed" in caplog.text


def test_glibc_trim_is_found_and_runs():
    trim = malloc_trim()
    assert trim is not None  # Debian, and the project's images, use glibc
    assert trim() in (0, 1)


def test_the_lever_makes_full_collections_rarer():
    before = gc.get_threshold()
    try:
        install()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[2] >= 100 * 10  # Python's own third threshold
    finally:
        gc.set_threshold(*before)


@pytest.fixture(params=["on", "off"])
def probed_daphne(request, tmp_path):
    """levers.server under levers.tests.gc_probe: no automatic cyclic
    garbage collection; census() counts what a collection would find."""
    port = free_port()
    census_dir = tmp_path / "census"
    census_dir.mkdir()
    server = ServerProcess(
        "daphne",
        [
            str(BIN / "python"), "-m", "levers.tests.gc_probe", str(census_dir),
            "--endpoint", f"tcp:port={port}:interface=127.0.0.1",
            "chatroom.asgi:application",
        ],
        port,
        server_env(tmp_path, port, LEVER_MEMORY=request.param),
        tmp_path,
    )  # fmt: skip
    server.census_dir = census_dir
    server.lever = request.param
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def census(server) -> dict:
    """Connection objects a collection found unreachable, and those alive."""
    answer = server.census_dir / "census.json"
    answer.unlink(missing_ok=True)
    (server.census_dir / "census.request").touch()
    deadline = time.monotonic() + 10
    while not answer.exists():
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)
    return json.loads(answer.read_text())


@pytest.mark.system
def test_closed_sockets_are_freed_without_the_cyclic_collector(probed_daphne):
    """Plain Daphne leaves each closed WebSocket's protocol, transport and
    HTTP request in reference cycles, freed only by a full collection, which
    pauses every open socket (docs/levers.md)."""
    session = leaving_room(sign_up(probed_daphne.url, "cycles"))
    # Django's ASGI handler leaves HTTP requests served by Daphne in a cycle
    # (an exception's traceback): wait until Daphne has forgotten them.
    forgotten(probed_daphne, "WebRequest")
    with ExitStack() as open_now:
        open_sockets(session, probed_daphne.port, count=5, stack=open_now)
        while_open = census(probed_daphne)
    unreachable = forgotten(probed_daphne, "WebSocketProtocol", "WebRequest")

    assert while_open["alive"]["WebSocketProtocol"] == 5
    assert while_open["unreachable"] == {}
    if probed_daphne.lever == "off":  # what the lever is for
        assert unreachable["WebSocketProtocol"] == 5, unreachable
        assert unreachable["WebRequest"] == 5, unreachable
        return
    # So full collections can be rare.
    assert while_open["gc_thresholds"] == list(GC_THRESHOLDS)
    assert unreachable == {}, probed_daphne.logs()


def forgotten(server, *kinds: str) -> collections.Counter:
    """Take censuses until no connection object of these kinds is alive
    (Daphne forgets a connection within a second of its end); the
    unreachable ones they found."""
    unreachable: collections.Counter = collections.Counter()
    deadline = time.monotonic() + 15
    while True:
        found = census(server)
        unreachable.update(found["unreachable"])
        if not any(found["alive"].get(kind) for kind in kinds):
            return unreachable
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
