"""
No silent loss in the channel layer: 100 rooms x 50 sockets = 5,000 sockets on
one Daphne process (deploy/start-ws.sh) with a Redis of the test's own, every
room chatting at one message every 2 s for 10 s (the benchmark's load
generator, bench/loadgen.py, with Load.track_ids: each client keeps the ids it
holds and resumes after a gap that a live message's prev_id reveals, as the
room page does). In the end every client holds every message PostgreSQL
stored for its room, none twice; what the broadcasts missed and resume
recovered is counted, so a loss is visible even when it is repaired.
"""

from collections import Counter, defaultdict

import pytest

from bench.loadgen import Load, run
from chat.models import Message

from .cluster import django_database_url
from .load_rig import one_daphne, seed

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOMS = 100
ROOM_SIZE = 50
USERS = 500  # ten sockets each
RATE = 50  # messages per second over all rooms: one per room every 2 s
SECONDS = 10


def test_every_client_holds_every_message_of_its_room(tmp_path, figure):
    # No rate limit: a rate-limited send is not stored, so it could not be
    # lost, but it would leave the load generator's own count (sent x room
    # size) off from what the rooms really carried.
    with one_daphne(tmp_path, django_database_url(), CHAT_MESSAGE_RATE_LIMIT="") as rig:
        cookies = seed(rig.cluster.env, USERS, ROOMS)
        load = Load(
            urls=[rig.url], protocol="chatroom", rooms=ROOMS, clients=ROOM_SIZE,
            rate=RATE, duration=SECONDS, drain=3, cookies=cookies,
            origin=rig.origin, processes=4, connect_concurrency=12, track_ids=True,
        )  # fmt: skip
        result = run(load)
        tracebacks = dict(rig.cluster.tracebacks())
    summary = result.summary()
    stored = defaultdict(set)
    for slug, message_id in Message.objects.values_list("room__slug", "id"):
        stored[slug].add(message_id)
    stored_count = sum(len(ids) for ids in stored.values())
    count = reckon(result.tracks, stored)

    label = "5,000 sockets chatting"
    figure(
        f"{label}: sockets connected / failed",
        "{connected} / {failed}".format(**summary),
    )
    figure(f"{label}: messages sent / stored", f"{summary['sent']} / {stored_count}")
    deliveries = "{expected} / {live} / {resumed} / {lost}".format(**count)
    figure(
        f"{label}: deliveries expected / delivered live / recovered by resume / lost",
        deliveries,
    )
    figure(
        f"{label}: duplicated live deliveries / phantom ids / gaps noticed",
        "{duplicated} / {phantom} / {gaps}".format(**count),
    )
    figure(
        f"{label}: live delivery latency p50 / p99 / max (ms)",
        "{p50_ms} / {p99_ms} / {max_ms}".format(**summary),
    )
    figure(f"{label}: error frames", dict(count["errors"]))
    figure(f"{label}: tracebacks in Daphne's log", tracebacks)

    assert summary["failed"] == 0, summary["errors"]
    assert len(result.tracks) == ROOMS * ROOM_SIZE
    assert summary["sent"] == stored_count
    assert count["expected"] == stored_count * ROOM_SIZE
    assert count["lost"] == 0, count
    assert count["duplicated"] == 0, count
    assert count["phantom"] == 0, count


def reckon(tracks: list[dict], stored: dict[str, set[int]]) -> Counter:
    """What the clients hold against what PostgreSQL stored: each client
    should hold every message stored in its room after it joined."""
    count = Counter()
    count["errors"] = Counter()
    for track in tracks:
        room = stored.get(f"bench-{track['room']}", set())
        due = {i for i in room if i > (track["joined_after"] or 0)}
        live, resumed = set(track["live"]), set(track["resumed"])
        count["expected"] += len(due)
        count["live"] += len(due & live)
        count["resumed"] += len(due & resumed)
        count["lost"] += len(due - live - resumed)
        count["phantom"] += len((live | resumed) - room)
        count["duplicated"] += track["duplicated"]
        count["gaps"] += track["gaps"]
        count["errors"].update(track["errors"])
    return count
