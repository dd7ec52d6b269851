"""
Chat reads. The HTTP views and the WebSocket consumer fetch rooms and messages
only through these functions.
"""

from dataclasses import dataclass

from django.db.models import QuerySet

from .models import Message, Room


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]  # always in increasing id order
    has_more: bool


def room_list() -> QuerySet[Room]:
    return Room.objects.order_by("title", "slug")


def room_get(*, slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


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
    if after is not None and before is not None:
        raise ValueError("pass after or before, not both")
    # room.messages keeps `room` cached on each message: no query per message.
    messages = room.messages.select_related("author")
    if after is not None:
        rows = list(messages.filter(id__gt=after).order_by("id")[: limit + 1])
        return MessagePage(messages=rows[:limit], has_more=len(rows) > limit)
    if before is not None:
        messages = messages.filter(id__lt=before)
    rows = list(messages.order_by("-id")[: limit + 1])
    return MessagePage(messages=rows[:limit][::-1], has_more=len(rows) > limit)
