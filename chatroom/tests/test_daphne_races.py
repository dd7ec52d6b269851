"""
A race the fuzzer (test_fuzz.py) found in Daphne as deployed: when autobahn
fails a connection (invalid UTF-8, an oversized frame, a ping timeout) it marks
the socket closed at once, but Daphne hears of it one event-loop turn later. A
reply the consumer sends in between raises autobahn's Disconnected inside the
consumer ("Exception inside application: Attempt to send on a closed
protocol"), which dies without running disconnect(): its presence entry
outlives the socket (a ghost in the room for CHAT_PRESENCE_TTL) and its group
membership stays behind. Known upstream: django/channels#1820.

This hits the race on purpose, again and again (a consumer busy answering a
burst of frames when an invalid UTF-8 frame fails the connection), and checks
that it leaves no traceback and no ghost. Two fixes, each enough on its own
(this test fails without both): chatroom.wsserver's server drops a reply to a
socket autobahn no longer has open, as Daphne already does for one it knows is
disconnected; and ChatConsumer.send treats a refused frame as a gone client
(under any server, `make run`'s plain Daphne included).
"""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from chat import services

from .fuzz_server import KNOWN_RACE, fuzz_daphne, sender_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# 400 KB of frames to answer: Daphne reads them over several turns of the
# event loop, so the consumer is still busy answering when the invalid frame
# fails the connection. An attempt takes about 30 ms; without the fixes the
# race was first hit after 30 to 57 attempts, and 94 times in 300.
ATTEMPTS = 300
BURST, FRAME = 100, "x" * 4_000  # not JSON: each one is answered at once
INVALID_UTF8 = b"\xff"


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker, tmp_path_factory):
    with fuzz_daphne(tmp_path_factory) as server:
        yield server


def test_a_socket_failed_mid_reply_leaves_no_traceback_and_no_ghost(
    daphne, django_user_model, figure
):
    ghost = django_user_model.objects.create_user("ghost", password="x" * 20)
    watcher = django_user_model.objects.create_user("watcher", password="x" * 20)
    services.room_create(slug="races", title="Races", created_by=watcher)
    watching = sender_for(daphne, watcher, "races")
    failing = sender_for(daphne, ghost, "races")
    attempts = 0
    try:
        watching.open()
        for attempts in range(1, ATTEMPTS + 1):  # noqa: B007 - reported below
            socket = failing.open()
            try:
                for _ in range(BURST):
                    socket.send(FRAME)
                socket.send(INVALID_UTF8, text=True)
                for _ in range(BURST + 1):  # the answers, then the drop
                    socket.recv(timeout=10)
            except ConnectionClosed:
                pass
            failing.socket = None
            if KNOWN_RACE in daphne.logs():
                break
        figure("attempts at the race (unfixed: hit within about 60)", attempts)
        users = settled_presence(watching.socket)
    finally:
        watching.close()
        failing.close()
    assert KNOWN_RACE not in daphne.logs()
    assert users == ["watcher"], "the failed socket's user is still present"


def settled_presence(socket, seconds: float = 3) -> list[str] | None:
    """The last presence frame the watcher gets within `seconds` (announced
    0.2 s after a leave)."""
    users = None
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(socket.recv(timeout=remaining))
        except TimeoutError:
            break
        if frame["type"] == "presence":
            users = frame["users"]
    return users
