"""
The chat's only door to the channel layer.

Services call the sync functions from transaction.on_commit, so a broadcast
leaves only after its message is in the database, whichever server stored it;
the consumer calls the async ones. Events carry the frame already encoded: it
is serialized once per broadcast, not once per recipient.
"""

import asyncio
import logging
import uuid
import weakref
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import protocol
from .models import Message

logger = logging.getLogger(__name__)

# Consumer handler names are the event types with "." turned into "_".
MESSAGE_EVENT = "chat.message"
PRESENCE_EVENT = "chat.presence"
TYPING_EVENT = "chat.typing"


def room_group(slug: str) -> str:
    return f"chat.room.{slug}"


# --- From sync code (services) ----------------------------------------------


def message_created(*, message: Message, prev_id: int | None) -> None:
    """Broadcast a stored message to its room. Called after commit."""
    frame = {**protocol.message_frame(message), "prev_id": prev_id}
    try:
        async_to_sync(_group_send)(message.room.slug, MESSAGE_EVENT, frame)
    except Exception as exc:
        # The message is stored: clients that missed it get it on resume.
        logger.warning(
            "broadcast of message %s to room %s failed: %r",
            message.id,
            message.room.slug,
            exc,
        )


# --- From async code (the consumer) -----------------------------------------


async def room_join(*, slug: str, channel_name: str) -> None:
    await get_channel_layer().group_add(room_group(slug), channel_name)


async def room_leave(*, slug: str, channel_name: str) -> None:
    await get_channel_layer().group_discard(room_group(slug), channel_name)


async def presence_changed(*, slug: str, users: list[str]) -> None:
    await _group_send(slug, PRESENCE_EVENT, {"type": "presence", "users": users})


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
