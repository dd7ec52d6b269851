"""
Chat writes. The only place rooms and messages are created; the HTTP views and
the WebSocket consumer both call these functions.
"""

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from . import events
from .errors import ChatError
from .models import Message, Room
from .ratelimit import message_rate_check

CLIENT_ID_MAX_LENGTH = Message._meta.get_field("client_id").max_length
SLUG_MAX_LENGTH = Room._meta.get_field("slug").max_length
# Random bytes in a private room's slug: its address cannot be guessed.
PRIVATE_SLUG_SUFFIX_BYTES = 6


def room_create(
    *, slug: str, title: str, created_by: AbstractBaseUser, is_private: bool = False
) -> Room:
    """Create a room; raises django's ValidationError for a bad or taken slug.

    A private room's slug is the one asked for plus a random suffix, so its
    address cannot be guessed and a taken slug never tells anyone that a
    private room exists (docs/protocol.md). Its creator is its first member.
    """
    if is_private:
        suffix = secrets.token_hex(PRIVATE_SLUG_SUFFIX_BYTES)
        slug = f"{slug[: SLUG_MAX_LENGTH - len(suffix) - 1]}-{suffix}"
    room = Room(slug=slug, title=title, created_by=created_by, is_private=is_private)
    room.full_clean()
    with transaction.atomic():
        room.save()
        if is_private:
            room.members.add(created_by)
    return room


def room_member_add(
    *, room: Room, username: str, added_by: AbstractBaseUser
) -> AbstractBaseUser:
    """Let the user called `username` into a private room; only its creator may."""
    _check_room_owner(room=room, user=added_by)
    user = (
        get_user_model()
        ._default_manager.filter(
            **{get_user_model().USERNAME_FIELD: username}, is_active=True
        )
        .first()
    )
    if user is None:
        raise ChatError("user_not_found", f"There is no user called {username!r}.")
    room.members.add(user)
    return user


def room_member_remove(
    *, room: Room, user: AbstractBaseUser, removed_by: AbstractBaseUser
) -> None:
    """Take `user` out of a private room: its creator may remove anyone else, and
    members may leave. Their open sockets in the room are closed after commit
    (chat.signals)."""
    if user.pk != removed_by.pk:
        _check_room_owner(room=room, user=removed_by)
    elif user.pk == room.created_by_id:
        raise ChatError("owner_cannot_leave", "The room's creator cannot leave it.")
    room.members.remove(user)


def _check_room_owner(*, room: Room, user: AbstractBaseUser) -> None:
    if not room.is_private:
        raise ChatError("room_not_private", "Public rooms have no member list.")
    if user.pk != room.created_by_id:
        raise ChatError(
            "not_room_owner",
            "Only the room's creator can change its members.",
            http_status=403,
        )


@dataclass(frozen=True, kw_only=True)
class MessageRequest:
    """A message a client asked to send, not yet checked."""

    room: Room
    author: AbstractBaseUser
    body: object
    client_id: object


def message_create(
    *, room: Room, author: AbstractBaseUser, body: object, client_id: object
) -> tuple[Message, bool]:
    """Store a message and broadcast it to the room once the transaction commits.

    Returns (message, created). A client_id the author already used returns the
    stored message with created=False and broadcasts nothing: a retried send is
    not a new message. Raises ChatError for a message that is refused.
    """
    request = MessageRequest(room=room, author=author, body=body, client_id=client_id)
    (result,) = message_create_many(requests=[request])
    if isinstance(result, ChatError):
        raise result
    return result


def message_create_many(
    *, requests: Sequence[MessageRequest]
) -> list[tuple[Message, bool] | ChatError]:
    """message_create for each request, stored together (on PostgreSQL in one
    transaction): for each, (message, created) or the ChatError that refused
    it. One room's messages are stored and broadcast in the order given."""
    results: list[tuple[Message, bool] | ChatError] = [None] * len(requests)
    drafts: list[tuple[int, Message]] = []
    for n, request in enumerate(requests):
        try:
            body = _clean_body(request.body)
            client_id = _clean_client_id(request.client_id)
            message_rate_check(user=request.author)
        except ChatError as error:
            results[n] = error
            continue
        draft = Message(
            room=request.room, author=request.author, body=body, client_id=client_id
        )
        drafts.append((n, draft))
    # Insert first: a retry is rare, and the unique (author, client_id)
    # constraint tells it apart. Looking it up first would cost every message
    # one more query.
    stored = Message.objects.create_next_many([draft for _, draft in drafts])
    for (n, draft), (message, prev_id, duplicate) in zip(drafts, stored, strict=True):
        request = requests[n]
        if message is not None:
            # Runs at once when the message is already committed; inside a
            # caller's transaction, when that commits.
            transaction.on_commit(
                partial(events.message_created, message=message, prev_id=prev_id)
            )
            request.room.last_message_id = message.id
            results[n] = (message, True)
        elif duplicate:  # a retry, or the same client_id from another connection
            results[n] = _retried(draft)
        else:  # the room is gone, or private and the author no longer a member
            results[n] = ChatError(
                "room_not_found", "There is no such room.", http_status=404
            )
    return results


def new_client_id() -> str:
    return uuid.uuid4().hex


def _retried(draft: Message) -> tuple[Message, bool] | ChatError:
    """The message stored under this draft's author and client_id."""
    message = (
        Message.objects.select_related("room", "author")
        .filter(author=draft.author, client_id=draft.client_id)
        .first()
    )
    if message is None:
        return ChatError(
            "client_id_reused",
            "This client_id named one of your messages, since deleted.",
        )
    if message.room_id != draft.room_id:
        return ChatError(
            "client_id_reused",
            "This client_id already names one of your messages in another room.",
        )
    return message, False


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
