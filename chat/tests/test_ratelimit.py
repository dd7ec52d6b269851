"""
The per-user message rate limit (CHAT_MESSAGE_RATE_LIMIT): over the socket and
over HTTP, one count per user, a clear error naming when to retry, and nothing
stored past the limit.
"""

import json

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from chat import services
from chat.errors import ChatError
from chat.models import Message

from .test_consumers import joined, next_frame, send_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limit_of_three(settings):
    settings.CHAT_MESSAGE_RATE_LIMIT = "3 per 10 seconds"


def create(room, user, body):
    return services.message_create(room=room, author=user, body=body, client_id=body)


def test_messages_past_the_limit_are_refused_and_not_stored(
    limit_of_three, room, user, other_user
):
    for body in ("one", "two", "three"):
        create(room, user, body)
    with pytest.raises(ChatError) as refused:
        create(room, user, "four")
    assert refused.value.code == "rate_limited"
    assert refused.value.http_status == 429
    assert 1 <= refused.value.retry_after <= 10
    assert "3 per 10 seconds" in refused.value.detail
    # The limit is per user.
    create(room, other_user, "bob's")
    assert list(Message.objects.values_list("body", flat=True)) == [
        "one",
        "two",
        "three",
        "bob's",
    ]


def test_an_empty_limit_means_none(settings, room, user):
    settings.CHAT_MESSAGE_RATE_LIMIT = ""
    for number in range(30):
        create(room, user, f"m{number}")
    assert Message.objects.count() == 30


def test_http_posts_share_the_count_and_get_429(
    limit_of_three, auth_client, room, user
):
    for body in ("one", "two", "three"):
        create(room, user, body)
    response = auth_client.post(
        "/api/rooms/general/messages/",
        json.dumps({"body": "four", "client_id": "four"}),
        content_type="application/json",
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert response["Retry-After"] == str(error["retry_after"])
    assert Message.objects.count() == 3


async def test_socket_gets_an_error_frame_naming_the_message(
    limit_of_three, open_socket, user, room
):
    alice, _ = await joined(open_socket, user)
    for number in range(5):
        await send_message(alice, f"m{number}", f"c-{number}")
    delivered, refused = [], []
    for _ in range(5):
        frame = await next_frame(alice, "message", "error")
        (delivered if frame["type"] == "message" else refused).append(frame)
    assert [frame["body"] for frame in delivered] == ["m0", "m1", "m2"]
    assert [(f["code"], f["client_id"]) for f in refused] == [
        ("rate_limited", "c-3"),
        ("rate_limited", "c-4"),
    ]
    assert all(frame["retry_after"] >= 1 for frame in refused)
    assert await database_sync_to_async(Message.objects.count)() == 3


def test_a_limit_that_does_not_parse_fails_the_system_check(settings):
    settings.CHAT_MESSAGE_RATE_LIMIT = "lots"
    with pytest.raises(SystemCheckError, match="chat.E001"):
        call_command("check")
