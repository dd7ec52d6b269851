"""
The chat's only door to the channel layer.

Services call the sync functions from transaction.on_commit, so a broadcast
leaves only after its message is in the database, whichever server stored it;
the consumer calls the async ones. Events carry the frame already encoded: it
is serialized once per broadcast, not once per recipient.
"""

import asyncio
import atexit
import logging
import uuid
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from . import protocol
from .models import Message
from .outbox import Outbox

if TYPE_CHECKING:
    from .presence_store import PresenceChange

logger = logging.getLogger(__name__)

# Consumer handler names are the event types with "." turned into "_".
MESSAGE_EVENT = "chat.message"
PRESENCE_EVENT = "chat.presence"
# Tells a room's sockets to send their client the roster afresh.
PRESENCE_RESYNC_EVENT = "chat.presence_resync"
TYPING_EVENT = "chat.typing"
# Tells a user's sockets to close (chat.consumers.ChatConsumer.chat_close).
CLOSE_EVENT = "chat.close"
# Tells a user's sockets to recheck their access (chat.access).
ACCESS_EVENT = "chat.access"


def room_group(slug: str) -> str:
    return f"chat.room.{slug}"


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


# --- From sync code (services) ----------------------------------------------


def message_created(*, message: Message, prev_id: int | None) -> None:
    """Broadcast a stored message to its room. Called after commit; returns
    before the broadcast has left (chat.outbox)."""
    frame = {**protocol.message_frame(message), "prev_id": prev_id}
    # If it fails, the message is stored: clients that missed it get it on resume.
    _from_sync(
        _group_send(message.room.slug, MESSAGE_EVENT, frame),
        what=f"broadcast of message {message.id} to room {message.room.slug}",
    )


def session_ended(*, user_id: int, session_key: str | None) -> None:
    """Close the sockets opened with this session (the user logged out)."""
    event = {
        "type": CLOSE_EVENT,
        "session_key": session_key,
        "code": "not_authenticated",
        "detail": "You have logged out.",
    }
    # If it fails there is nothing to retry with: chat.access closes the sockets
    # at its next periodic check, the session being gone by then.
    _from_sync(
        get_channel_layer().group_send(user_group(user_id), event),
        what=f"closing the sockets of a session of user {user_id}",
    )


def user_access_changed(*, user_id: int) -> None:
    """Have every socket of this user recheck its access now (chat.access):
    the account or a room membership changed."""
    _from_sync(
        get_channel_layer().group_send(user_group(user_id), {"type": ACCESS_EVENT}),
        what=f"rechecking the sockets of user {user_id}",
    )


def broadcasts_flush(*, timeout: float = 5) -> bool:
    """Wait until every broadcast this process handed over from sync code has
    left (or failed); False if `timeout` seconds were not enough. Runs when the
    process exits (atexit; levers.stop runs it before Daphne exits)."""
    return _outbox.flush(timeout=timeout)


_outbox = Outbox()
# A daemon thread dies with the interpreter: send what is waiting first.
atexit.register(broadcasts_flush)


def _from_sync(coroutine: Coroutine, *, what: str) -> None:
    if isinstance(get_channel_layer(), InMemoryChannelLayer):
        # Its queues belong to the loop the consumers run in (one process, no
        # Redis): async_to_sync hands the call to that loop, and waits.
        async def awaited():
            return await coroutine

        try:
            async_to_sync(awaited)()
        except Exception as exc:
            logger.warning("%s failed: %r", what, exc)
    else:
        _outbox.submit(coroutine, what=what)


# --- From async code (the consumer) -----------------------------------------


async def socket_join(*, slug: str, user_id: int, channel_name: str) -> None:
    """Subscribe a socket to its room and to its user's control events."""
    layer = get_channel_layer()
    await asyncio.gather(
        layer.group_add(room_group(slug), channel_name),
        layer.group_add(user_group(user_id), channel_name),
    )


async def socket_leave(*, slug: str, user_id: int, channel_name: str) -> None:
    layer = get_channel_layer()
    await asyncio.gather(
        layer.group_discard(room_group(slug), channel_name),
        layer.group_discard(user_group(user_id), channel_name),
    )


async def presence_changed(
    *, slug: str, changes: list["PresenceChange"], count: int
) -> None:
    frame = {
        "type": "presence_change",
        "changes": [
            {"user": c.user, "present": c.present, "version": c.version}
            for c in changes
        ],
        "count": count,
    }
    await _group_send(slug, PRESENCE_EVENT, frame)


async def presence_resync(*, slug: str) -> None:
    """Have every socket in the room send its client the roster afresh: each
    reads it after the event reached it, so no change it handles later is
    older than its roster."""
    await get_channel_layer().group_send(
        room_group(slug), {"type": PRESENCE_RESYNC_EVENT}
    )


async def user_typing(*, slug: str, username: str) -> None:
    await _group_send(slug, TYPING_EVENT, {"type": "typing", "user": username})


async def _group_send(slug: str, event_type: str, frame: dict[str, Any]) -> None:
    await get_channel_layer().group_send(
        room_group(slug), {"type": event_type, "text": protocol.encode(frame)}
    )


# --- Readiness --------------------------------------------------------------

# One probe channel per event loop: Daphne's single loop reuses it, so readiness
# probes leave no channel behind on a long-lived server.
_probes: (
    "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, asyncio.Lock]]"
)
_probes = weakref.WeakKeyDictionary()


async def layer_round_trip(*, timeout: float) -> None:
    """Send a message through the channel layer to ourselves and receive it."""
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    if loop not in _probes:
        _probes[loop] = (await layer.new_channel("readyz."), asyncio.Lock())
    channel, lock = _probes[loop]
    token = uuid.uuid4().hex
    async with lock:
        try:
            await layer.send(channel, {"type": "readyz.ping", "token": token})
            async with asyncio.timeout(timeout):
                while (await layer.receive(channel)).get("token") != token:
                    pass
        except BaseException:
            # A failed receive may have unsubscribed the channel: start afresh.
            _probes.pop(loop, None)
            raise
