"""
Private rooms: members only. A non-member can neither see the room, read its
history, join its socket nor post to it, and members' traffic never reaches a
non-member; to them the room does not exist.
"""

import re

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from chat import selectors, services
from chat.errors import ChatError
from chat.models import Message, Room
from chat.protocol import CloseCode

from .test_consumers import joined, next_frame, refused, send_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_room(user) -> Room:
    return services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )


@pytest.fixture
def mallory(make_user):
    return make_user("mallory")


def post_json(client, slug, payload):
    return client.post(
        f"/api/rooms/{slug}/messages/", payload, content_type="application/json"
    )


# --- Services and selectors -------------------------------------------------


def test_the_creator_is_the_first_member(private_room, user):
    assert selectors.room_member_usernames(room=private_room) == ["alice"]


def test_only_members_see_a_private_room(private_room, room, user, mallory):
    from django.contrib.auth.models import AnonymousUser

    assert list(selectors.room_list(user=user)) == [room, private_room]
    assert list(selectors.room_list(user=mallory)) == [room]
    assert list(selectors.room_list(user=AnonymousUser())) == [room]
    assert selectors.room_get(slug=private_room.slug, user=mallory) is None
    assert selectors.room_get(slug=private_room.slug, user=AnonymousUser()) is None
    assert selectors.room_get(slug=private_room.slug, user=user) == private_room


def test_a_room_with_many_members_is_listed_once(private_room, user, make_user):
    for name in ("m1", "m2", "m3"):
        make_user(name)
        services.room_member_add(room=private_room, username=name, added_by=user)
    assert list(selectors.room_list(user=user)).count(private_room) == 1


def test_the_owner_adds_and_removes_members(private_room, user, other_user):
    services.room_member_add(room=private_room, username="bob", added_by=user)
    assert selectors.room_get(slug=private_room.slug, user=other_user) == private_room
    services.room_member_remove(room=private_room, user=other_user, removed_by=user)
    assert selectors.room_get(slug=private_room.slug, user=other_user) is None


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("non-owner adds", "not_room_owner"),
        ("unknown user", "user_not_found"),
        ("public room", "room_not_private"),
        ("owner leaves", "owner_cannot_leave"),
    ],
)
def test_membership_changes_that_are_refused(
    private_room, room, user, other_user, mallory, action, code
):
    services.room_member_add(room=private_room, username="bob", added_by=user)
    calls = {
        "non-owner adds": lambda: services.room_member_add(
            room=private_room, username="mallory", added_by=other_user
        ),
        "unknown user": lambda: services.room_member_add(
            room=private_room, username="nobody", added_by=user
        ),
        "public room": lambda: services.room_member_add(
            room=room, username="bob", added_by=user
        ),
        "owner leaves": lambda: services.room_member_remove(
            room=private_room, user=user, removed_by=user
        ),
    }
    with pytest.raises(ChatError) as refused:
        calls[action]()
    assert refused.value.code == code
    assert selectors.room_member_usernames(room=private_room) == ["alice", "bob"]


def test_a_member_may_leave(private_room, user, other_user):
    services.room_member_add(room=private_room, username="bob", added_by=user)
    services.room_member_remove(
        room=private_room, user=other_user, removed_by=other_user
    )
    assert selectors.room_member_usernames(room=private_room) == ["alice"]


def test_a_non_member_cannot_post_even_holding_the_room(private_room, mallory):
    with pytest.raises(ChatError) as refused:
        services.message_create(
            room=private_room, author=mallory, body="let me in", client_id="m-1"
        )
    assert refused.value.code == "room_not_found"
    assert not Message.objects.exists()


# --- HTTP -------------------------------------------------------------------


def test_non_member_gets_404_everywhere_over_http(client, private_room, mallory):
    client.force_login(mallory)
    assert b"Secret" not in client.get(reverse("chat:lobby")).content
    room_page = reverse("chat:room", kwargs={"slug": private_room.slug})
    assert client.get(room_page).status_code == 404
    history = client.get(f"/api/rooms/{private_room.slug}/messages/")
    assert history.status_code == 404
    assert history.json()["error"]["code"] == "room_not_found"
    posted = post_json(
        client, private_room.slug, {"body": "let me in", "client_id": "m-1"}
    )
    assert posted.status_code == 404
    assert not Message.objects.exists()


def test_a_member_reads_and_posts_over_http(auth_client, private_room):
    posted = post_json(
        auth_client, private_room.slug, {"body": "just us", "client_id": "a-1"}
    )
    assert posted.status_code == 201
    history = auth_client.get(f"/api/rooms/{private_room.slug}/messages/").json()
    assert [m["body"] for m in history["messages"]] == ["just us"]
    page = auth_client.get(reverse("chat:room", kwargs={"slug": private_room.slug}))
    assert page.status_code == 200
    assert b'id="members"' in page.content


def test_the_room_page_manages_members(auth_client, private_room, other_user):
    add = reverse("chat:member_add", kwargs={"slug": private_room.slug})
    remove = reverse("chat:member_remove", kwargs={"slug": private_room.slug})
    assert auth_client.post(add, {"username": "bob"}).status_code == 302
    assert selectors.room_member_usernames(room=private_room) == ["alice", "bob"]
    page = auth_client.get(add, follow=True)  # GET is not allowed
    assert page.status_code == 405
    response = auth_client.post(add, {"username": "nobody"}, follow=True)
    assert "There is no user called" in response.content.decode()
    assert auth_client.post(remove, {"username": "bob"}).status_code == 302
    assert selectors.room_member_usernames(room=private_room) == ["alice"]


def test_the_lobby_creates_private_rooms_at_unguessable_addresses(auth_client, user):
    response = auth_client.post(
        reverse("chat:lobby"), {"title": "Ours", "slug": "ours", "is_private": "on"}
    )
    assert response.status_code == 302
    room = Room.objects.get(title="Ours")
    assert room.is_private
    assert response.url == reverse("chat:room", kwargs={"slug": room.slug})
    assert re.fullmatch(r"ours-[0-9a-f]{12}", room.slug)
    assert selectors.room_member_usernames(room=room) == ["alice"]
    # The same slug asked for again: another address.
    auth_client.post(
        reverse("chat:lobby"), {"title": "Ours", "slug": "ours", "is_private": "on"}
    )
    assert Room.objects.filter(title="Ours").count() == 2


def test_the_lobby_form_tells_nobody_a_private_room_exists(
    client, private_room, mallory
):
    """Asked for the slug the private room was made with, the lobby answers as
    if there were none: it makes the room. A public room's slug is taken."""
    client.force_login(mallory)
    lobby = reverse("chat:lobby")
    response = client.post(lobby, {"title": "Mine", "slug": "secret"})
    assert response.status_code == 302
    assert Room.objects.get(slug="secret").created_by == mallory
    refused = client.post(lobby, {"title": "Again", "slug": "secret"})
    assert refused.status_code == 200
    assert "already exists" in refused.content.decode()


# --- WebSocket --------------------------------------------------------------


async def test_a_non_member_cannot_join_the_socket(open_socket, private_room, mallory):
    socket, connected = await open_socket(mallory, slug=private_room.slug)
    assert connected
    assert await refused(socket) == ("room_not_found", CloseCode.ROOM_NOT_FOUND)


async def test_members_traffic_never_reaches_a_non_member(
    open_socket, private_room, room, user, mallory
):
    alice, _ = await joined(open_socket, user, slug=private_room.slug)
    # mallory is in the public room, the only place she can be.
    eve, _ = await joined(open_socket, mallory, slug="general")
    await send_message(alice, "for members only", "a-1")
    assert (await next_frame(alice, "message"))["body"] == "for members only"
    await send_message(eve, "hello?", "e-1")
    # The next message mallory gets is her own: nothing of the private room.
    assert (await next_frame(eve, "message"))["body"] == "hello?"


async def test_a_removed_member_is_closed_out_of_the_room(
    open_socket, private_room, room, user, other_user
):
    await database_sync_to_async(services.room_member_add)(
        room=private_room, username="bob", added_by=user
    )
    bob_private, _ = await joined(open_socket, other_user, slug=private_room.slug)
    bob_public, _ = await joined(open_socket, other_user, slug="general")

    await database_sync_to_async(services.room_member_remove)(
        room=private_room, user=other_user, removed_by=user
    )

    error = await next_frame(bob_private, "error")
    assert error["code"] == "room_not_found"
    close = await bob_private.receive_output(timeout=3)
    assert close == {"type": "websocket.close", "code": CloseCode.ROOM_NOT_FOUND}
    # Their socket in another room stays open.
    await send_message(bob_public, "still here", "b-1")
    assert (await next_frame(bob_public, "message"))["body"] == "still here"
