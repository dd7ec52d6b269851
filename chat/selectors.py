"""
Chat reads. The HTTP views and the WebSocket consumer fetch rooms and messages
only through these functions.
"""

from collections.abc import Collection
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from .models import Message, Room


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]  # always in increasing id order
    has_more: bool


User = AbstractBaseUser | AnonymousUser


def room_list(*, user: User) -> QuerySet[Room]:
    """The rooms `user` may see: every public room and the private rooms they are
    a member of."""
    return rooms_visible_to(user=user).order_by("title", "slug")


def room_get(*, slug: str, user: User) -> Room | None:
    """The room with this slug if `user` may see it. A private room is None to a
    non-member, exactly like a missing one: its name gives nothing away.

    Every socket's handshake makes this lookup: the room by its unique slug,
    then, for a private room only, the membership.
    """
    try:
        # get(), not first(): a unique slug needs no ORDER BY, and the ORM
        # builds the query faster without one.
        room = Room.objects.get(slug=slug)
    except Room.DoesNotExist:
        return None
    if room.is_private and not room_has_member(room=room, user=user):
        return None
    return room


def room_has_member(*, room: Room, user: User) -> bool:
    return user.is_authenticated and room.members.filter(pk=user.pk).exists()


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
    """One page of a room's messages, oldest first, in one query.

    after: the messages following that id. before: the newest messages older
    than that id. Neither: the newest messages. has_more says whether more
    exist beyond the page in the direction walked.
    """
    if after is not None and before is not None:
        raise ValueError("pass after or before, not both")
    # room.messages keeps `room` cached on each message: no query per message.
    messages = room.messages.select_related("author")
    if after is not None:
        # Walks the (room, id) index forward from the cursor, up to the limit.
        rows = list(messages.filter(id__gt=after).order_by("id")[: limit + 1])
        return MessagePage(messages=rows[:limit], has_more=len(rows) > limit)
    if before is not None:
        messages = messages.filter(id__lt=before)
    # The newest first, up to the limit, then turned oldest first.
    rows = list(messages.order_by("-id")[: limit + 1])
    return MessagePage(messages=rows[:limit][::-1], has_more=len(rows) > limit)


@dataclass(frozen=True)
class SocketGrant:
    """What let a socket in: its user, the session it was opened with and that
    session's auth hash (it changes with the password), and its room."""

    user_id: int
    session_key: str
    session_hash: str
    room_id: int


NOT_AUTHENTICATED = "not_authenticated"
ROOM_NOT_FOUND = "room_not_found"


def socket_grants_revoked(*, grants: Collection[SocketGrant]) -> dict[SocketGrant, str]:
    """The grants that no longer hold, each with why: "not_authenticated" (the
    session ended or expired, the password changed, the account was
    deactivated or deleted) or "room_not_found" (the room was deleted, or is
    private and the user is no longer a member). Four queries however many
    grants: what the database says now, whichever way it was changed."""
    if not grants:
        return {}
    sessions = _sessions_alive({grant.session_key for grant in grants})
    users = get_user_model()._default_manager.filter(
        pk__in={grant.user_id for grant in grants}
    )
    # The hash a session of each user must hold, if the user may log in at all
    # (as Django's ModelBackend: an inactive user cannot).
    session_hashes = {
        user.pk: user.get_session_auth_hash()
        for user in users
        if getattr(user, "is_active", True)
    }
    rooms = dict(
        Room.objects.filter(pk__in={grant.room_id for grant in grants}).values_list(
            "pk", "is_private"
        )
    )
    private_rooms = {pk for pk, is_private in rooms.items() if is_private}
    members = set(
        Room.members.through.objects.filter(
            room_id__in=private_rooms, user_id__in=session_hashes
        ).values_list("room_id", "user_id")
        if private_rooms
        else ()
    )
    revoked = {}
    for grant in grants:
        session_hash = session_hashes.get(grant.user_id)
        if (
            grant.session_key not in sessions
            or session_hash is None
            or not constant_time_compare(grant.session_hash, session_hash)
        ):
            revoked[grant] = NOT_AUTHENTICATED
        elif grant.room_id not in rooms or (
            grant.room_id in private_rooms
            and (grant.room_id, grant.user_id) not in members
        ):
            revoked[grant] = ROOM_NOT_FOUND
    return revoked


def _sessions_alive(session_keys: set[str]) -> set[str]:
    """The keys of sessions that still exist and have not expired."""
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies":
        return session_keys  # the server keeps nothing to end: a cookie is valid
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if hasattr(store_class, "get_model_class"):  # the database engines: one query
        alive = store_class.get_model_class().objects.filter(
            session_key__in=session_keys, expire_date__gt=timezone.now()
        )
        return set(alive.values_list("session_key", flat=True))
    return {key for key in session_keys if store_class().exists(key)}
