"""
CSRF on every state-changing HTTP request: each is refused (403) without a
token, and with a valid token from a foreign Origin; with both right it works.
"""

import json

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from chat import services
from chat.models import Message, Room

pytestmark = pytest.mark.django_db

FOREIGN = "http://evil.example"


@pytest.fixture
def private_room(user):
    return services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )


def requests(other_user, private_room):
    """(name, path, form data or None for a JSON body) of every form and API write."""
    return [
        ("create room", reverse("chat:lobby"), {"title": "New", "slug": "new"}),
        (
            "add member",
            reverse("chat:member_add", kwargs={"slug": private_room.slug}),
            {"username": other_user.username},
        ),
        (
            "remove member",
            reverse("chat:member_remove", kwargs={"slug": private_room.slug}),
            {"username": other_user.username},
        ),
        ("post message", "/api/rooms/general/messages/", None),
        ("log out", reverse("logout"), {}),
    ]


def send(client: Client, path: str, data, *, token: str | None, origin: str | None):
    headers = {}
    if origin:
        headers["Origin"] = origin
    if data is None:
        if token:
            headers["X-CSRFToken"] = token
        body = json.dumps({"body": "hi", "client_id": "c-1"})
        return client.post(path, body, content_type="application/json", headers=headers)
    if token:
        data = {**data, "csrfmiddlewaretoken": token}
    return client.post(path, data, headers=headers)


def logged_in_browser(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("chat:lobby"))  # the page sets the CSRF cookie
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def changed(private_room) -> tuple:
    return (
        Room.objects.count(),
        private_room.members.count(),
        Message.objects.count(),
    )


@pytest.mark.parametrize("attack", ["no token", "foreign origin"])
def test_every_state_change_is_refused_without_csrf(
    attack, user, other_user, room, private_room
):
    services.room_member_add(room=private_room, username="bob", added_by=user)
    before = changed(private_room)
    for name, path, data in requests(other_user, private_room):
        client, token = logged_in_browser(user)
        if attack == "no token":
            response = send(client, path, data, token=None, origin=None)
        else:
            response = send(client, path, data, token=token, origin=FOREIGN)
        assert response.status_code == 403, name
        # Still logged in: the refused logout did nothing.
        room_page = reverse("chat:room", kwargs={"slug": private_room.slug})
        assert client.get(room_page).status_code == 200
    assert changed(private_room) == before


def test_the_same_requests_work_with_a_token_from_the_site(
    user, other_user, room, private_room
):
    services.room_member_add(room=private_room, username="bob", added_by=user)
    for name, path, data in requests(other_user, private_room):
        client, token = logged_in_browser(user)
        response = send(client, path, data, token=token, origin="http://testserver")
        assert response.status_code in (201, 302), name


@pytest.mark.parametrize("page", ["login", "signup"])
def test_login_and_signup_need_the_token(page, user):
    client = Client(enforce_csrf_checks=True)
    fields = {
        "username": "alice",
        "password": "a-long-test-password-42",
        "password1": "a-long-test-password-42",
        "password2": "a-long-test-password-42",
    }
    response = client.post(reverse(page), fields)
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
