import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from chat import services
from chat.models import Room

pytestmark = pytest.mark.django_db

XSS = '<img src=x onerror=alert(1)><script>alert("x")</script>\'";</script>'


@pytest.fixture
def no_broadcast(monkeypatch):
    monkeypatch.setattr("chat.events.message_created", lambda **event: None)


def test_lobby_lists_rooms(client, room):
    response = client.get(reverse("chat:lobby"))
    assert response.status_code == 200
    assert b'data-slug="general"' in response.content
    assert b"General" in response.content


def test_anonymous_lobby_invites_to_log_in(client):
    content = client.get(reverse("chat:lobby")).content.decode()
    assert reverse("login") in content
    assert 'id="room-form"' not in content


def test_logged_in_user_creates_a_room_and_lands_in_it(auth_client, user):
    response = auth_client.post(
        reverse("chat:lobby"), {"slug": "random", "title": "Random"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:room", kwargs={"slug": "random"})
    assert Room.objects.get(slug="random").created_by == user


def test_room_form_errors_are_shown(auth_client, room):
    response = auth_client.post(
        reverse("chat:lobby"), {"slug": "general", "title": "Again"}
    )
    assert response.status_code == 200
    assert b"already exists" in response.content
    bad = auth_client.post(reverse("chat:lobby"), {"slug": "bad slug!", "title": ""})
    assert bad.status_code == 200
    assert b"This field is required" in bad.content
    assert Room.objects.count() == 1


def test_anonymous_room_creation_goes_to_login(client):
    response = client.post(reverse("chat:lobby"), {"slug": "x", "title": "X"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Room.objects.exists()


def test_room_page_renders_recent_messages_as_text(
    auth_client, room, user, no_broadcast
):
    services.message_create(room=room, author=user, body=XSS, client_id="x-1")
    response = auth_client.get(reverse("chat:room", kwargs={"slug": "general"}))
    content = response.content.decode()

    assert response.status_code == 200
    assert "<img src=x" not in content
    assert '<script>alert("x")' not in content
    assert "&lt;img src=x onerror=alert(1)&gt;" in content


def test_room_page_config_is_safe_json(auth_client, room, user, no_broadcast):
    message, _ = services.message_create(
        room=room, author=user, body="hi", client_id="c"
    )
    content = auth_client.get(
        reverse("chat:room", kwargs={"slug": "general"})
    ).content.decode()
    raw = re.search(
        r'<script id="chat-config" type="application/json">(.*?)</script>',
        content,
        re.S,
    ).group(1)
    config = json.loads(raw)
    assert config["room"] == "general"
    assert config["user"] == "alice"
    assert config["ws_path"] == "/ws/chat/general/"
    assert config["api_url"] == "/api/rooms/general/messages/"
    assert config["last_id"] == message.id
    assert config["max_body_length"] == 2000


def test_room_page_shows_the_newest_page_only(
    auth_client, room, user, no_broadcast, settings
):
    settings.CHAT_HISTORY_PAGE_SIZE = 2
    for n in range(3):
        services.message_create(
            room=room, author=user, body=f"message {n}", client_id=f"{n}"
        )
    content = auth_client.get(
        reverse("chat:room", kwargs={"slug": "general"})
    ).content.decode()
    # Bodies no random token can contain (a CSRF token once held "m0").
    assert "message 0" not in content
    assert "message 1" in content and "message 2" in content
    assert re.search(r'id="load-older"[^>]*>', content).group(0).count("hidden") == 0


def test_room_page_needs_login(client, room):
    response = client.get(reverse("chat:room", kwargs={"slug": "general"}))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_unknown_room_is_a_friendly_404(auth_client):
    response = auth_client.get(reverse("chat:room", kwargs={"slug": "nope"}))
    assert response.status_code == 404
    assert b"<html" in response.content.lower()


def test_login_and_logout(client, user):
    response = client.post(
        reverse("login"),
        {"username": "alice", "password": "a-long-test-password-42"},
    )
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    assert client.post(reverse("logout")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_forms_carry_csrf_tokens(client, auth_client, room):
    for response in (
        client.get(reverse("login")),
        client.get(reverse("signup")),
        auth_client.get(reverse("chat:lobby")),
        auth_client.get(reverse("chat:room", kwargs={"slug": "general"})),
    ):
        assert b'name="csrfmiddlewaretoken"' in response.content


def test_admin_lists_rooms_and_messages(client, room, user, no_broadcast):
    services.message_create(room=room, author=user, body="hi", client_id="c")
    admin = get_user_model().objects.create_superuser("root", password="pw-12345678")
    client.force_login(admin)
    assert client.get(reverse("admin:chat_room_changelist")).status_code == 200
    response = client.get(reverse("admin:chat_message_changelist"))
    assert response.status_code == 200
    assert b"hi" in response.content


def test_admin_cannot_add_messages_behind_the_chats_back(client):
    admin = get_user_model().objects.create_superuser("root", password="pw-12345678")
    client.force_login(admin)
    assert client.get(reverse("admin:chat_message_add")).status_code == 403
