"""
Chat writes. The only place rooms and messages are created; the HTTP views and
the WebSocket consumer both call these functions.
"""

import uuid
from functools import partial

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction

from . import events
from .errors import ChatError
from .models import Message, Room

CLIENT_ID_MAX_LENGTH = Message._meta.get_field("client_id").max_length


def room_create(*, slug: str, title: str, created_by: AbstractBaseUser) -> Room:
    """Create a room; raises django's ValidationError for a bad or taken slug."""
    room = Room(slug=slug, title=title, created_by=created_by)
    room.full_clean()
    room.save()
    return room


def message_create(
    *, room: Room, author: AbstractBaseUser, body: object, client_id: object
) -> tuple[Message, bool]:
    """Store a message and broadcast it to the room once the transaction commits.

    Returns (message, created). A client_id the author already used returns the
    stored message with created=False and broadcasts nothing: a retried send is
    not a new message.
    """
    body = _clean_body(body)
    client_id = _clean_client_id(client_id)

    # Insert first: a retry is rare, and the unique (author, client_id)
    # constraint turns it into an IntegrityError, handled below. Looking it up
    # first would cost every message one more query.
    try:
        with transaction.atomic():
            # Lock the room row: a room's messages then commit in id order, and
            # each one knows the message before it.
            try:
                prev_id = (
                    Room.objects.select_for_update()
                    .values_list("last_message_id", flat=True)
                    .get(pk=room.pk)
                )
            except Room.DoesNotExist:
                raise ChatError(
                    "room_not_found", "There is no such room.", http_status=404
                ) from None
            message = Message.objects.create(
                room=room, author=author, body=body, client_id=client_id
            )
            Room.objects.filter(pk=room.pk).update(last_message_id=message.id)
            transaction.on_commit(
                partial(events.message_created, message=message, prev_id=prev_id)
            )
    except IntegrityError:
        # A retry, or the same client_id raced in from another connection.
        existing = _message_by_client_id(author=author, client_id=client_id, room=room)
        if existing is None:
            raise
        return existing, False
    room.last_message_id = message.id
    return message, True


def new_client_id() -> str:
    return uuid.uuid4().hex


def _message_by_client_id(
    *, author: AbstractBaseUser, client_id: str, room: Room
) -> Message | None:
    message = (
        Message.objects.select_related("room", "author")
        .filter(author=author, client_id=client_id)
        .first()
    )
    if message is not None and message.room_id != room.pk:
        raise ChatError(
            "client_id_reused",
            "This client_id already names one of your messages in another room.",
        )
    return message


def _clean_body(body: object) -> str:
    if body is None:
        raise ChatError("empty_body", "Type a message first.")
    if not isinstance(body, str):
        raise ChatError("invalid_body", "The message body must be text.")
    body = body.strip()
    if not body:
        raise ChatError("empty_body", "Type a message first.")
    max_length = settings.CHAT_MESSAGE_MAX_LENGTH
    if len(body) > max_length:
        raise ChatError(
            "body_too_long", f"A message can be at most {max_length} characters."
        )
    if "\x00" in body or not _is_encodable(body):
        raise ChatError(
            "invalid_body", "The message holds characters that cannot be stored."
        )
    return body


def client_id_is_valid(client_id: object) -> bool:
    return (
        isinstance(client_id, str)
        and 0 < len(client_id) <= CLIENT_ID_MAX_LENGTH
        and "\x00" not in client_id
        and _is_encodable(client_id)
    )


def _clean_client_id(client_id: object) -> str:
    if not client_id_is_valid(client_id):
        raise ChatError(
            "invalid_client_id",
            f'"client_id" must be a string of 1 to {CLIENT_ID_MAX_LENGTH} characters.',
        )
    return client_id


def _is_encodable(text: str) -> bool:
    # JSON can carry lone surrogates; no database encoding can store them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
