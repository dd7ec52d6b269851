"""
Lever "clean_stop" (levers/stop.py), as deploy/start-ws.sh runs it: on SIGTERM
Daphne stops listening, closes every WebSocket with 1001 (going away), lets
the consumers finish and exits, instead of dropping the connections (1006).
"""

import contextlib
import signal
import threading
import time
import urllib.request
from contextlib import ExitStack

import pytest

from tests.webclient import sign_up

from .servers import closed_with, leaving_room, open_sockets, started_daphne

pytestmark = pytest.mark.system


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


def test_without_the_lever_sigterm_drops_the_sockets(tmp_path):
    """The behaviour the lever replaces: plain Daphne's abnormal closure."""
    with (
        started_daphne(tmp_path, LEVER_CLEAN_STOP="off") as daphne,
        ExitStack() as open_now,
    ):
        session = leaving_room(sign_up(daphne.url, "dropped"))
        [socket] = open_sockets(session, daphne.port, count=1, stack=open_now)
        daphne.process.send_signal(signal.SIGTERM)
        assert closed_with(socket) is None  # no close frame: 1006
