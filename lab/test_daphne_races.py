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
that it leaves no traceback and no ghost under deploy/start-ws.sh: the lever
LEVER_DROP_LATE_REPLIES (levers/replies.py) drops a reply to a socket autobahn
no longer has open, as Daphne already does for one it knows is disconnected.
Without the lever the race shows (test_without_the_lever_the_race_shows).
"""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from chat import services
from chat.tests.roster import Roster

from .fuzz_server import KNOWN_RACE, fuzz_daphne, sender_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# 400 KB of frames to answer: Daphne reads them over several turns of the
# event loop, so the consumer is still busy answering when the invalid frame
# fails the connection. An attempt takes about 30 ms; without the fixes the
# race was first hit after 30 to 57 attempts, and 94 times in 300.
ATTEMPTS = 300
BURST, FRAME = 100, "x" * 4_000  # not JSON: each one is answered at once
INVALID_UTF8 = b"\xff"


@pytest.fixture(scope="module", params=["on", "off"])
def daphne(request, django_db_setup, django_db_blocker, tmp_path_factory):
    with fuzz_daphne(
        tmp_path_factory,
        LEVER_DROP_LATE_REPLIES=request.param,
        # Without the lever, each consumer the race kills stays counted among
        # the user's sockets (as it stays in presence): hundreds of attempts.
        CHAT_MAX_SOCKETS_PER_USER="0",
    ) as server:
        server.lever = request.param
        yield server


def test_a_socket_failed_mid_reply_leaves_no_traceback_and_no_ghost(
    daphne, django_user_model, figure
):
    if daphne.lever == "off":
        pytest.skip("the race shows without the lever: the next test")
    attempts, users = race(daphne, django_user_model)
    figure("attempts at the race (unfixed: hit within about 60)", attempts)
    assert KNOWN_RACE not in daphne.logs()
    assert users == ["watcher"], "the failed socket's user is still present"


def test_without_the_lever_the_race_shows(daphne, django_user_model, figure):
    """What LEVER_DROP_LATE_REPLIES is for: if this stops failing the race,
    an upgrade fixed it upstream and the lever can go (docs/levers.md)."""
    if daphne.lever == "on":
        pytest.skip("with the lever: the test above")
    attempts, _users = race(daphne, django_user_model)
    figure("without the lever: attempts until the race showed", attempts)
    assert KNOWN_RACE in daphne.logs()


def race(daphne, django_user_model) -> tuple[int, list[str] | None]:
    """Attempts at the race until it shows in Daphne's log or ATTEMPTS are
    made; how many, and who the watcher sees in the room afterwards."""
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
        users = settled_presence(watching.socket)
    finally:
        watching.close()
        failing.close()
    return attempts, users


def settled_presence(socket, seconds: float = 3) -> list[str] | None:
    """Who the watcher sees in the room after every presence frame it got
    since it opened, and in `seconds` more (changes are announced 0.2 s after
    a leave); None if it got none."""
    roster, seen = Roster(), False
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(socket.recv(timeout=remaining))
        except TimeoutError:
            break
        seen = roster.apply(frame) or seen
    return roster.users if seen else None
