"""
Chat reads. The HTTP views and the WebSocket consumer fetch rooms and messages
only through these functions.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from . import statements
from .models import Message, Room


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]  # always in increasing id order
    has_more: bool


@dataclass(frozen=True)
class MessageRowPage:
    """A page of message_rows: plain values, no model instances."""

    rows: list[tuple]  # (id, author's username, body, created_at, client_id)
    has_more: bool


User = AbstractBaseUser | AnonymousUser


def room_list(*, user: User) -> QuerySet[Room]:
    """The rooms `user` may see: every public room and the private rooms they are
    a member of."""
    return rooms_visible_to(user=user).order_by("title", "slug")


def room_get(*, slug: str, user: User) -> Room | None:
    """The room with this slug if `user` may see it. A private room is None to a
    non-member, exactly like a missing one: its name gives nothing away.

    Every socket's handshake looks its room up: the statement is written out
    once (statements.room_visible_sql), where building rooms_visible_to's query
    cost four times the CPU of running it."""
    rooms = Room.objects.raw(statements.room_visible_sql(), [slug, user.pk])
    return next(iter(rooms), None)


def room_exists(*, slug: str, user: User) -> bool:
    return rooms_visible_to(user=user).filter(slug=slug).exists()


def room_member_usernames(*, room: Room) -> list[str]:
    field = get_user_model().USERNAME_FIELD
    return list(room.members.order_by(field).values_list(field, flat=True))


def rooms_visible_to(*, user: User) -> QuerySet[Room]:
    public = Q(is_private=False)
    if not user.is_authenticated:
        return Room.objects.filter(public)
    # EXISTS rather than a join: one row per room whatever its member count.
    membership = Room.members.through.objects.filter(
        room_id=OuterRef("pk"), user_id=user.pk
    )
    return Room.objects.filter(public | Exists(membership))


def message_list(
    *,
    room: Room,
    after: int | None = None,
    before: int | None = None,
    limit: int,
) -> MessagePage:
    """One page of a room's messages, oldest first.

    after: the messages following that id. before: the newest messages older
    than that id. Neither: the newest messages. has_more says whether more
    exist beyond the page in the direction walked.
    """
    # room.messages keeps `room` cached on each message: no query per message.
    messages, has_more = _page(
        room.messages.select_related("author"), after=after, before=before, limit=limit
    )
    return MessagePage(messages=messages, has_more=has_more)


def message_rows(
    *,
    slug: str,
    user: User,
    after: int | None = None,
    before: int | None = None,
    limit: int,
) -> MessageRowPage | None:
    """message_list for the room with this slug, as rows of values; None if
    there is no such room that `user` may see.

    The page and its authors' usernames cost one query, the room's lookup
    included, and nothing becomes a model instance: this is the history API's
    read, which every page load and every poll makes. Only an empty page costs
    a second query, to tell an empty room from a missing one.
    """
    walk = _walk(after=after, before=before)
    cursor_params = [after if walk == "after" else before] if walk else []
    with connection.cursor() as cursor:
        cursor.execute(
            statements.message_page_sql(walk),
            [slug, user.pk, *cursor_params, limit + 1],
        )
        rows, has_more = _trimmed(cursor.fetchall(), limit=limit, walk=walk)
    if not rows and not room_exists(slug=slug, user=user):
        return None
    if convert := statements.created_at_from_db():
        rows = [(*row[:3], convert(row[3]), row[4]) for row in rows]
    return MessageRowPage(rows=rows, has_more=has_more)


def _page(
    messages: QuerySet, *, after: int | None, before: int | None, limit: int
) -> tuple[list, bool]:
    """One page of `messages` in increasing id order, and whether more exist
    beyond it in the direction walked (see message_list)."""
    walk = _walk(after=after, before=before)
    if walk == "after":
        messages = messages.filter(id__gt=after).order_by("id")
    elif walk == "before":
        messages = messages.filter(id__lt=before).order_by("-id")
    else:
        messages = messages.order_by("-id")
    return _trimmed(list(messages[: limit + 1]), limit=limit, walk=walk)


def _walk(*, after: int | None, before: int | None) -> str:
    """A page's direction: "after", "before" or "" (the newest)."""
    if after is not None and before is not None:
        raise ValueError("pass after or before, not both")
    return "after" if after is not None else "before" if before is not None else ""


def _trimmed(rows: list, *, limit: int, walk: str) -> tuple[list, bool]:
    """Up to limit + 1 rows in the walk's order: the page in increasing id order,
    and whether more exist beyond it."""
    page = rows[:limit] if walk == "after" else rows[:limit][::-1]
    return page, len(rows) > limit
