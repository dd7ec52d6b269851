"""
chatroom.wsserver, run by deploy/start-ws.sh: on SIGTERM Daphne stops
listening, closes every WebSocket with 1001 (going away), lets the consumers
finish and exits, instead of dropping the connections (1006).
"""

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from .browser import Browser, sign_up
from .processes import BASE_DIR, BIN, ServerProcess, free_port


def server_env(tmp_path, port: int) -> dict[str, str]:
    """Daphne on a migrated SQLite database of its own, one process only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    } | {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DAPHNE_BIND": "127.0.0.1",
        "DAPHNE_PORT": str(port),
    }
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--verbosity", "0"],
        cwd=BASE_DIR, env=env, check=True, timeout=120,
    )  # fmt: skip
    return env


@pytest.fixture
def daphne(tmp_path):
    """deploy/start-ws.sh on a free port, ready; stopped afterwards if alive."""
    port = free_port()
    server = ServerProcess(
        "daphne",
        [str(BASE_DIR / "deploy" / "start-ws.sh")],
        port,
        server_env(tmp_path, port),
        tmp_path,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_sigterm_closes_every_socket_with_going_away(daphne):
    with ExitStack() as open_now:
        session = leaving_room(sign_up(daphne.url, "leaver"))
        sockets = open_sockets(session, daphne.port, count=3, stack=open_now)
        daphne.process.send_signal(signal.SIGTERM)
        codes = [closed_with(socket) for socket in sockets]
    exit_code = daphne.process.wait(timeout=20)

    assert codes == [1001, 1001, 1001], daphne.logs()
    assert exit_code == 0, daphne.logs()
    assert "Closed 3 WebSockets; 0 not finished in time" in daphne.logs()
    assert "Traceback" not in daphne.logs()


def leaving_room(browser: Browser) -> str:
    """Create the room the sockets join; the session cookie that joins it."""
    status, _ = browser.submit_form("/", {"slug": "leaving", "title": "Leaving"})
    assert status == 200
    return browser.cookie("sessionid")


def open_sockets(session: str, port: int, count: int, stack: ExitStack) -> list:
    sockets = []
    for _ in range(count):
        socket = stack.enter_context(
            ws_connect(
                f"ws://127.0.0.1:{port}/ws/chat/leaving/",
                origin=f"http://127.0.0.1:{port}",
                additional_headers={"Cookie": f"sessionid={session}"},
                open_timeout=10,
            )
        )
        assert '"hello"' in socket.recv(timeout=10)
        sockets.append(socket)
    return sockets


def closed_with(socket) -> int | None:
    """The close code the server sent, or None if it only dropped the TCP."""
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            socket.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return -1
    return -1


def test_sigterm_during_http_requests_still_exits(daphne):
    """Threads of HTTP requests that Daphne cancels at shutdown must not keep
    the process alive (plain Daphne can hang there)."""
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{daphne.url}/accounts/login/", timeout=5)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)  # requests in flight in every worker thread
        daphne.process.send_signal(signal.SIGTERM)
        exit_code = daphne.process.wait(timeout=20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert exit_code == 0, daphne.logs()


@pytest.fixture
def probed_daphne(tmp_path):
    """chatroom.wsserver under chatroom.tests.gc_probe: no automatic cyclic
    garbage collection; census() counts what a collection would find."""
    port = free_port()
    census_dir = tmp_path / "census"
    census_dir.mkdir()
    server = ServerProcess(
        "daphne",
        [
            str(BIN / "python"), "-m", "chatroom.tests.gc_probe", str(census_dir),
            "--endpoint", f"tcp:port={port}:interface=127.0.0.1",
            "chatroom.asgi:application",
        ],
        port,
        server_env(tmp_path, port),
        tmp_path,
    )  # fmt: skip
    server.census_dir = census_dir
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


def test_closed_sockets_are_freed_without_the_cyclic_collector(probed_daphne):
    """Plain Daphne leaves each closed WebSocket's protocol, transport and
    HTTP request in reference cycles, freed only by a full collection, which
    pauses every open socket (docs/benchmarks.md)."""
    session = leaving_room(sign_up(probed_daphne.url, "cycles"))
    # Django's ASGI handler leaves HTTP requests served by Daphne in a cycle
    # (an exception's traceback): wait until Daphne has forgotten them.
    forgotten(probed_daphne, "WebRequest")
    with ExitStack() as open_now:
        open_sockets(session, probed_daphne.port, count=5, stack=open_now)
        while_open = census(probed_daphne)
    unreachable = forgotten(probed_daphne, "WebSocketProtocol", "WebRequest")

    # So full collections can be rare (chatroom.wsserver.set_gc_thresholds).
    assert while_open["gc_thresholds"] == [700, 10, 1000]
    assert while_open["alive"]["WebSocketProtocol"] == 5
    assert while_open["unreachable"] == {}
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


@pytest.mark.parametrize("value", ["abc", "700,10", "700,0,1000"])
def test_a_bad_gc_threshold_stops_daphne_with_a_message(value):
    result = subprocess.run(
        [str(BIN / "python"), "-m", "chatroom.wsserver", "chatroom.asgi:application"],
        cwd=BASE_DIR, env={**os.environ, "DAPHNE_GC_THRESHOLDS": value},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "DAPHNE_GC_THRESHOLDS must be three positive whole numbers" in result.stderr
    assert "Traceback" not in result.stderr
