"""
chat.access: whatever ends a user's right to a room closes their open sockets
there, whichever way it was made. Changes through Django's models close them
at once; a bulk update or SQL, at the next periodic check (here every 0.2 s).
After the close nothing more reaches the client and nothing it sends is served.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection

from chat import selectors, services
from chat.models import Message, Room
from chat.protocol import CloseCode

from .test_account_sockets import closed_with, logged_in, session_socket
from .test_consumers import next_frame, send_message

pytestmark = pytest.mark.django_db(transaction=True)

RECHECK_INTERVAL = 0.2
# Long enough that only an immediate recheck can close a socket in time.
NO_PERIODIC_CHECK = 60.0


@pytest.fixture
def private_room(user, other_user) -> Room:
    room = services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )
    services.room_member_add(room=room, username="bob", added_by=user)
    return room


async def member_socket(open_socket, who, room):
    _browser, cookie = await database_sync_to_async(logged_in)(who)
    return await session_socket_in(open_socket, cookie, room.slug)


async def session_socket_in(open_socket, cookie, slug):
    socket, connected = await open_socket(cookie=cookie, slug=slug)
    assert connected
    await next_frame(socket, "hello")
    return socket


def run(function):
    return database_sync_to_async(function)()


# --- Through Django's models: at once ------------------------------------------


@pytest.mark.parametrize(
    "removal",
    ["service", "members.remove", "members.clear", "user.chat_rooms.remove",
     "user.chat_rooms.clear", "members.set"],
)  # fmt: skip
async def test_a_removed_member_is_closed_at_once_whichever_way(
    settings, open_socket, private_room, user, other_user, removal
):
    settings.CHAT_ACCESS_RECHECK_INTERVAL = NO_PERIODIC_CHECK
    bob = await member_socket(open_socket, other_user, private_room)
    alice = await member_socket(open_socket, user, private_room)
    remove = {
        "service": lambda: services.room_member_remove(
            room=private_room, user=other_user, removed_by=user
        ),
        # What the admin's room form does with its members field.
        "members.set": lambda: private_room.members.set([user]),
        "members.remove": lambda: private_room.members.remove(other_user),
        "members.clear": lambda: private_room.members.clear(),
        "user.chat_rooms.remove": lambda: other_user.chat_rooms.remove(private_room),
        "user.chat_rooms.clear": lambda: other_user.chat_rooms.clear(),
    }[removal]
    await run(remove)

    assert await closed_with(bob) == ("room_not_found", CloseCode.ROOM_NOT_FOUND)
    if removal != "members.clear":
        await send_message(alice, "members only", "a-1")
        assert (await next_frame(alice, "message"))["body"] == "members only"
    assert await bob.receive_nothing(timeout=0.3)


async def test_a_password_change_closes_the_other_sessions_at_once(
    settings, open_socket, room, user
):
    settings.CHAT_ACCESS_RECHECK_INTERVAL = NO_PERIODIC_CHECK
    _stolen, stolen_cookie = await database_sync_to_async(logged_in)(user)
    stolen = await session_socket(open_socket, stolen_cookie)

    def change_password():
        user.set_password("a new secret")
        user.save()

    await run(change_password)
    assert await closed_with(stolen) == (
        "not_authenticated",
        CloseCode.NOT_AUTHENTICATED,
    )
    # Its late frames are not served.
    await send_message(stolen, "as alice", "s-1")
    assert not await run(Message.objects.exists)


async def test_logging_in_elsewhere_closes_nothing(settings, open_socket, room, user):
    settings.CHAT_ACCESS_RECHECK_INTERVAL = RECHECK_INTERVAL
    socket = await session_socket(
        open_socket, (await database_sync_to_async(logged_in)(user))[1]
    )
    # Django's login saves last_login; the periodic checks run meanwhile.
    await database_sync_to_async(logged_in)(user)
    await asyncio.sleep(RECHECK_INTERVAL * 3)
    await send_message(socket, "still here", "c-1")
    assert (await next_frame(socket, "message"))["body"] == "still here"


# --- Behind Django's back: at the next periodic check ------------------------


def deactivate_in_bulk(user, _room):
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)


def remove_membership_in_sql(user, room):
    table = Room.members.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE room_id = %s AND user_id = %s",
            [room.pk, user.pk],
        )


def change_password_in_bulk(user, _room):
    user.set_password("changed in bulk")
    get_user_model().objects.filter(pk=user.pk).update(password=user.password)


def delete_sessions_in_bulk(user, _room):
    Session.objects.all().delete()


def delete_room(_user, room):
    Room.objects.filter(pk=room.pk).delete()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (deactivate_in_bulk, ("not_authenticated", CloseCode.NOT_AUTHENTICATED)),
        (change_password_in_bulk, ("not_authenticated", CloseCode.NOT_AUTHENTICATED)),
        (delete_sessions_in_bulk, ("not_authenticated", CloseCode.NOT_AUTHENTICATED)),
        (remove_membership_in_sql, ("room_not_found", CloseCode.ROOM_NOT_FOUND)),
        (delete_room, ("room_not_found", CloseCode.ROOM_NOT_FOUND)),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
async def test_a_change_behind_djangos_back_closes_at_the_next_check(
    settings, open_socket, private_room, other_user, change, expected
):
    settings.CHAT_ACCESS_RECHECK_INTERVAL = RECHECK_INTERVAL
    bob = await member_socket(open_socket, other_user, private_room)
    await run(lambda: change(other_user, private_room))
    assert await closed_with(bob) == expected
    await bob.send_json_to({"type": "resume", "after": 0})
    assert await bob.receive_nothing(timeout=0.3)


async def test_a_check_while_the_database_is_down_closes_nothing(
    settings, open_socket, room, user, monkeypatch
):
    settings.CHAT_ACCESS_RECHECK_INTERVAL = RECHECK_INTERVAL
    socket = await session_socket(
        open_socket, (await database_sync_to_async(logged_in)(user))[1]
    )

    def database_down(**kwargs):
        raise selectors.Room.DoesNotExist  # any failure of the check itself

    monkeypatch.setattr(selectors, "socket_grants_revoked", database_down)
    await asyncio.sleep(RECHECK_INTERVAL * 3)
    await send_message(socket, "still here", "c-1")
    assert (await next_frame(socket, "message"))["body"] == "still here"
