"""
Fixtures of the levers' tests: Daphne started by deploy/start-ws.sh (every
lever it switches on) on a migrated SQLite database of its own, and helpers to
hold WebSockets open on it.
"""

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.processes import BASE_DIR, BIN, ServerProcess, free_port
from tests.webclient import Browser


def server_env(tmp_path, port: int, **extra: str) -> dict[str, str]:
    """Daphne on a migrated SQLite database of its own, one process only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        and not key.startswith("LEVER_")
    } | {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DAPHNE_BIND": "127.0.0.1",
        "DAPHNE_PORT": str(port),
        **extra,
    }
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--verbosity", "0"],
        cwd=BASE_DIR, env=env, check=True, timeout=120,
    )  # fmt: skip
    return env


@contextlib.contextmanager
def started_daphne(tmp_path, **variables: str) -> Iterator[ServerProcess]:
    """deploy/start-ws.sh on a free port with these extra variables, ready;
    stopped when the block ends if still alive."""
    port = free_port()
    server = ServerProcess(
        "daphne",
        [str(BASE_DIR / "deploy" / "start-ws.sh")],
        port,
        server_env(tmp_path, port, **variables),
        tmp_path,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def daphne(tmp_path):
    with started_daphne(tmp_path) as server:
        yield server


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
