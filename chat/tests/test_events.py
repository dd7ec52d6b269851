"""
chat.events from sync code: the HTTP side's and the database thread's
broadcasts go through one event loop and one channel-layer connection per
process, leave in commit order, and never hold up the code that stored them.
"""

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels_redis import pubsub
from django.conf import settings
from django.db import connection

from chat import events, outbox, services

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

create_message = database_sync_to_async(services.message_create)


def stored(room, user, client_id: str) -> int:
    """Store one message from sync code, as a view does; its id."""
    message, _ = services.message_create(
        room=room, author=user, body=f"body of {client_id}", client_id=client_id
    )
    return message.id


@pytest.fixture(autouse=True)
def no_rate_limit(settings):
    settings.CHAT_MESSAGE_RATE_LIMIT = ""  # one user stores every message here


async def listening(slug: str) -> str:
    """A channel in the room's group, as a consumer's would be."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.room_group(slug), channel)
    return channel


async def received_ids(channel: str, count: int) -> list[int]:
    layer = get_channel_layer()
    async with asyncio.timeout(10):
        return [
            json.loads((await layer.receive(channel))["text"])["id"]
            for _ in range(count)
        ]


@pytest.fixture
def held_broadcasts(monkeypatch):
    """Room broadcasts wait until the returned event is set (Redis slow to
    answer). `gate.holding` is set once the first one waits; each one that goes
    out is recorded in `gate.sent`."""
    gate = threading.Event()
    gate.holding = threading.Event()
    gate.sent = []
    group_send = events._group_send

    async def held(slug, event_type, frame):
        gate.holding.set()
        await asyncio.to_thread(gate.wait, 10)
        await group_send(slug, event_type, frame)
        gate.sent.append(frame["id"])

    monkeypatch.setattr(events, "_group_send", held)
    yield gate
    gate.set()
    assert events.broadcasts_flush(timeout=10)


def test_broadcasts_from_sync_code_reuse_one_redis_connection(room, user, monkeypatch):
    pools = []
    create_pool = pubsub.create_pool

    def counting_create_pool(host):
        pools.append(host)
        return create_pool(host)

    monkeypatch.setattr(pubsub, "create_pool", counting_create_pool)
    for number in range(10):
        services.message_create(
            room=room, author=user, body=f"post {number}", client_id=f"p{number}"
        )
    assert events.broadcasts_flush(timeout=10)
    # At most the first post of this process opens one; async_to_sync opened
    # one per post (a new event loop each time, and the layer is per loop).
    assert len(pools) <= 1


async def test_a_rooms_broadcasts_leave_in_the_order_it_stored_them(room, user):
    channel = await listening(room.slug)
    stored = []
    for number in range(40):
        message, _ = await create_message(
            room=room, author=user, body=f"m{number}", client_id=f"o{number}"
        )
        stored.append(message.id)
    assert await received_ids(channel, len(stored)) == stored


async def test_a_message_is_stored_without_waiting_for_its_broadcast(
    room, user, held_broadcasts
):
    channel = await listening(room.slug)
    # A sender that waited for the broadcast would wait here until it timed out
    # (outbox.SEND_TIMEOUT), and then give the broadcast up.
    message, created = await create_message(
        room=room, author=user, body="hello", client_id="c1"
    )
    assert created and held_broadcasts.sent == []
    held_broadcasts.set()
    assert await received_ids(channel, 1) == [message.id]


def test_flush_waits_for_the_broadcasts_handed_over(room, user, held_broadcasts):
    ids = [stored(room, user, f"f{number}") for number in range(3)]
    assert not events.broadcasts_flush(timeout=0.2)
    held_broadcasts.set()
    assert events.broadcasts_flush(timeout=10)
    assert held_broadcasts.sent == ids


def test_a_failed_broadcast_is_logged_and_the_next_one_still_leaves(
    room, user, monkeypatch, caplog
):
    group_send = events._group_send
    sent = []

    async def failing_once(slug, event_type, frame):
        if not sent:
            sent.append(None)
            raise ConnectionError("Redis went away")
        await group_send(slug, event_type, frame)
        sent.append(frame["id"])

    monkeypatch.setattr(events, "_group_send", failing_once)
    first, second = stored(room, user, "a"), stored(room, user, "b")
    assert events.broadcasts_flush(timeout=10)
    assert sent == [None, second]
    assert any(
        record.levelno == logging.WARNING
        and f"broadcast of message {first} to room general failed" in record.message
        and "Redis went away" in record.message
        for record in caplog.records
    )


def test_broadcasts_the_layer_holds_up_are_given_up_not_sent_late(
    room, user, held_broadcasts, monkeypatch, caplog
):
    monkeypatch.setattr(outbox, "SEND_TIMEOUT", 0.3)
    held = [stored(room, user, f"t{number}") for number in range(3)]
    assert events.broadcasts_flush(timeout=10)  # every one timed out, or gave up
    logged = [record.message for record in caplog.records]
    for message_id in held:
        assert any(
            f"message {message_id} to room general failed: TimeoutError" in line
            or f"message {message_id} to room general given up" in line
            for line in logged
        )
    # The layer answers again: the next broadcast leaves, and only it.
    held_broadcasts.set()
    latest = stored(room, user, "t3")
    assert events.broadcasts_flush(timeout=10)
    assert held_broadcasts.sent == [latest]


def test_broadcasts_past_the_outbox_size_are_dropped_and_logged(
    room, user, held_broadcasts, monkeypatch, caplog
):
    monkeypatch.setattr(outbox, "MAX_WAITING", 2)
    ids = [stored(room, user, "d0")]
    assert held_broadcasts.holding.wait(10)  # the first is on its way
    # Two wait behind it; the fourth finds the outbox full.
    ids += [stored(room, user, f"d{number}") for number in (1, 2, 3)]
    held_broadcasts.set()
    assert events.broadcasts_flush(timeout=10)
    assert held_broadcasts.sent == ids[:3]
    assert any(
        f"broadcast of message {ids[3]} to room general dropped" in r.message
        for r in caplog.records
    )


# A process of its own: stores one message, and exits as soon as it returns.
STORE_AND_EXIT = """
import django

django.setup()
from django.contrib.auth import get_user_model
from chat import services
from chat.models import Room

services.message_create(
    room=Room.objects.get(slug="general"),
    author=get_user_model().objects.get(username="alice"),
    body="last words",
    client_id="exit",
)
"""


@pytest.mark.services
async def test_a_process_that_exits_right_after_storing_still_broadcasts(room, user):
    channel = await listening(room.slug)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatroom.settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:"
        f"{db['PORT']}/{db['NAME']}",
    }
    # Its outbox thread is a daemon: without the exit hook it dies unsent.
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", STORE_AND_EXIT],
        env=env,
        cwd=settings.BASE_DIR,
        check=True,
        timeout=60,
    )
    stored = await database_sync_to_async(
        lambda: list(room.messages.values_list("id", flat=True))
    )()
    assert await received_ids(channel, 1) == stored
