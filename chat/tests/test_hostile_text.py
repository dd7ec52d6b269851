"""
Hostile text is stored verbatim, whichever road it takes (WebSocket or HTTP),
and the server renders it as text: escaped in the room page, JSON in the API.
The browser tests (chat/tests/browser/test_hostile_text.py) check that the page
script shows it inert too.
"""

import json

import pytest
from django.urls import reverse
from django.utils.html import escape

from chat.models import Message

from .payloads import XSS_PAYLOADS
from .test_consumers import joined, next_frame, send_message, stored_bodies

pytestmark = pytest.mark.django_db(transaction=True)


async def test_payloads_over_the_socket_are_stored_and_sent_verbatim(
    open_socket, user, room, settings
):
    settings.CHAT_MESSAGE_RATE_LIMIT = ""  # one user sends them all at once
    alice, _ = await joined(open_socket, user)
    for number, payload in enumerate(XSS_PAYLOADS):
        await send_message(alice, payload, f"x-{number}")
        assert (await next_frame(alice, "message"))["body"] == payload
    assert await stored_bodies() == XSS_PAYLOADS


def test_payloads_over_http_are_stored_verbatim_and_rendered_escaped(
    auth_client, room, settings
):
    settings.CHAT_MESSAGE_RATE_LIMIT = ""
    for number, payload in enumerate(XSS_PAYLOADS):
        response = auth_client.post(
            "/api/rooms/general/messages/",
            json.dumps({"body": payload, "client_id": f"h-{number}"}),
            content_type="application/json",
        )
        assert response.status_code == 201
        assert response.json()["body"] == payload
    assert list(Message.objects.values_list("body", flat=True)) == XSS_PAYLOADS

    page = auth_client.get(reverse("chat:room", kwargs={"slug": "general"}))
    content = page.content.decode()
    for payload in XSS_PAYLOADS:
        assert escape(payload) in content
    for marker in ("<script>alert", "<img src=x", "<svg", "<iframe", "<details"):
        assert marker not in content
    assert page["Content-Type"].startswith("text/html")
    history = auth_client.get("/api/rooms/general/messages/")
    assert history["Content-Type"] == "application/json"
    assert [m["body"] for m in history.json()["messages"]] == XSS_PAYLOADS
