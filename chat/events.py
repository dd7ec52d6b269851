"""
The chat's only door to the channel layer.

Services call the sync functions from transaction.on_commit, so a broadcast
leaves only after its message is in the database, whichever server stored it;
the consumer calls the async ones. Events carry the frame already encoded: it
is serialized once per broadcast, not once per recipient.
"""

import asyncio
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from . import protocol
from .models import Message

logger = logging.getLogger(__name__)

# Consumer handler names are the event types with "." turned into "_".
MESSAGE_EVENT = "chat.message"
PRESENCE_EVENT = "chat.presence"
TYPING_EVENT = "chat.typing"
# Tells a user's sockets to close (chat.consumers.ChatConsumer.chat_close).
CLOSE_EVENT = "chat.close"


def room_group(slug: str) -> str:
    return f"chat.room.{slug}"


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


# --- From sync code (services) ----------------------------------------------


def message_created(*, message: Message, prev_id: int | None) -> None:
    """Broadcast a stored message to its room. Called after commit."""
    frame = {**protocol.message_frame(message), "prev_id": prev_id}
    try:
        _from_sync(_group_send(message.room.slug, MESSAGE_EVENT, frame))
    except Exception as exc:
        # The message is stored: clients that missed it get it on resume.
        logger.warning(
            "broadcast of message %s to room %s failed: %r",
            message.id,
            message.room.slug,
            exc,
        )


def session_ended(*, user_id: int, session_key: str | None) -> None:
    """Close the sockets opened with this session (the user logged out)."""
    _sockets_close(
        user_id,
        {"session_key": session_key, "code": "not_authenticated"},
        detail="You have logged out.",
    )


def user_deactivated(*, user_id: int) -> None:
    """Close every socket of a user whose account was deactivated."""
    _sockets_close(
        user_id, {"code": "not_authenticated"}, detail="Your account is disabled."
    )


def member_removed(*, slug: str, user_id: int) -> None:
    """Close a user's sockets in a private room they are no longer a member of."""
    _sockets_close(
        user_id,
        {"room": slug, "code": "room_not_found"},
        detail="You are no longer a member of this room.",
    )


def _sockets_close(user_id: int, match: dict[str, Any], *, detail: str) -> None:
    event = {"type": CLOSE_EVENT, "detail": detail, **match}
    try:
        _from_sync(get_channel_layer().group_send(user_group(user_id), event))
    except Exception as exc:
        # Nothing to retry with: the sockets stay open until they next
        # reconnect, when authentication and membership are checked again.
        logger.warning("closing the sockets of user %s failed: %r", user_id, exc)


# Seconds sync code waits for the channel layer before giving a broadcast up.
SYNC_SEND_TIMEOUT = 5


class _LayerLoop:
    """An event loop in a daemon thread of this process, through which sync code
    (gunicorn's views, the ORM thread of Daphne) reaches a Redis channel layer.

    async_to_sync would start a new event loop for every call from a plain
    thread, and the Redis layers keep their connections per loop: every HTTP
    post would open a new Redis connection. This loop, and its connection, last
    as long as the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def run(self, coroutine: Coroutine, *, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked process (gunicorn's workers) inherits no thread: start anew.
            if self._loop is None or self._pid != os.getpid():
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                threading.Thread(
                    target=self._loop.run_forever, name="chat-layer-loop", daemon=True
                ).start()
            return self._loop


_layer_loop = _LayerLoop()


def _from_sync(coroutine: Coroutine) -> None:
    if isinstance(get_channel_layer(), InMemoryChannelLayer):
        # Its queues belong to the loop the consumers run in (one process, no
        # Redis): async_to_sync hands the call to that loop.
        async def awaited():
            return await coroutine

        async_to_sync(awaited)()
    else:
        _layer_loop.run(coroutine, timeout=SYNC_SEND_TIMEOUT)


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


# Rounds of socket_channel_release: each drops one message left in the queue.
RELEASE_ROUNDS = 10


async def socket_channel_release(*, channel_name: str) -> None:
    """Unsubscribe a finished consumer's own channel, if the layer has not.

    The Redis pub/sub layer unsubscribes a consumer's channel when the
    consumer's pending receive() on it is cancelled. When a message for the
    channel and the client's disconnect arrive in the same turn of the loop,
    Channels handles the disconnect and that receive() has already returned:
    nothing cancels it, and the subscription and its queue stay for the life
    of the process (django/channels_redis#276; 100 of 10,000 sockets in
    chatroom/tests/test_load.py). A receive() cancelled here ends it the way
    the layer would have.
    """
    layer = get_channel_layer()
    if not isinstance(layer, RedisPubSubChannelLayer):
        return
    for _ in range(RELEASE_ROUNDS):
        if channel_name not in layer.channels:
            return
        receiving = asyncio.ensure_future(layer.receive(channel_name))
        # One turn of the loop: it returns a queued message, or waits for one.
        await asyncio.sleep(0)
        receiving.cancel()
        # asyncio.wait, unlike await, neither raises the inner cancellation
        # nor cancels the inner task if this one is cancelled.
        await asyncio.wait({receiving})


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
