import pytest

from chat import protocol, selectors, services

pytestmark = pytest.mark.django_db


def test_a_stored_message_reads_back_as_the_same_frame(room, user, monkeypatch):
    monkeypatch.setattr("chat.events.message_created", lambda **kwargs: None)
    message, _ = services.message_create(
        room=room, author=user, body="<b>hé</b> \u2028", client_id="c-1"
    )
    frame = protocol.message_frame(message)
    assert protocol.encode(frame) == protocol.encode(
        protocol.message_frame(selectors.message_list(room=room, limit=1).messages[0])
    )
    assert list(frame) == [
        "type", "id", "room", "author", "body", "created_at", "client_id"
    ]  # fmt: skip
