"""
chatroom.wsserver, run by deploy/start-ws.sh: on SIGTERM Daphne stops
listening, closes every WebSocket with 1001 (going away), lets the consumers
finish and exits, instead of dropping the connections (1006).
"""

import contextlib
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
        sockets = open_sockets(
            sign_up(daphne.url, "leaver"), daphne.port, count=3, stack=open_now
        )
        daphne.process.send_signal(signal.SIGTERM)
        codes = [closed_with(socket) for socket in sockets]
    exit_code = daphne.process.wait(timeout=20)

    assert codes == [1001, 1001, 1001], daphne.logs()
    assert exit_code == 0, daphne.logs()
    assert "Closed 3 WebSockets; 0 not finished in time" in daphne.logs()
    assert "Traceback" not in daphne.logs()


def open_sockets(browser: Browser, port: int, count: int, stack: ExitStack) -> list:
    status, _ = browser.submit_form("/", {"slug": "leaving", "title": "Leaving"})
    assert status == 200
    session = browser.cookie("sessionid")
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
