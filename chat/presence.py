"""
Who is in each room, how many sockets each user has open, and who may say they
are typing.

A room's presence travels as changes: when a user's first socket joins a room,
or their last one leaves it, the room gets a `presence_change` frame, and each
new socket gets the roster once, a page at a time (`presence` frames). Every
change carries the room's presence version, so a client keeps what is newest
per user whatever order frames from different server processes arrive in
(docs/protocol.md). Changes are gathered per room for ANNOUNCE_DELAY, and
longer in a large room: each process sends a room of N users at most
ANNOUNCED_DELIVERIES / N frames a second, so thousands of sockets joining at
once cost the room's members a bounded share of what their processes can send,
and the room's messages go on.

The store (chat.presence_store) is Redis with REDIS_URL, shared by every
server process, with entries that expire unless their process refreshes them;
without Redis (the development defaults) it is this process's memory.

Presence is best effort: if Redis is unreachable the chat goes on without it,
and once Redis answers again every socket of the rooms concerned gets its
roster afresh (a resync), so nothing a lost change would have said stays
wrong.
"""

import asyncio
import logging
import math
import time
import weakref
from collections import defaultdict

from django.conf import settings
from redis import asyncio as aioredis

from . import events
from .presence_store import (
    MemoryPresence,
    PresenceChange,
    PresencePage,
    RedisPresence,
)

logger = logging.getLogger(__name__)

# Typing notices remembered by the in-memory store before it starts afresh.
TYPING_ENTRIES_KEPT = 10_000
# Seconds during which a room's presence changes are gathered into one frame,
ANNOUNCE_DELAY = 0.2
# or, in a room of N present users, N / ANNOUNCED_DELIVERIES seconds: the most
# presence frames per second one process's announcements cost a room.
ANNOUNCED_DELIVERIES = 1000
# Seconds before a resync is sent, and the longest wait between two tries.
RESYNC_DELAY = 1.0
RESYNC_DELAY_MAX = 30.0

__all__ = ["PresencePage", "presence_join", "presence_leave", "presence_page"]


async def presence_join(*, slug: str, channel_name: str, username: str) -> None:
    """Record a socket in a room; announce the user if they just came."""
    # First: if Redis is away, the refresher adds the socket once it is back.
    _start_refresher()
    try:
        version = await _store().join(slug, channel_name, username)
    except Exception as exc:
        logger.warning("presence: join of %s failed: %r", slug, exc)
        _schedule_resync(slug)
        return
    if version:
        _announce_soon(slug, [PresenceChange(username, True, version)])


async def presence_leave(*, slug: str, channel_name: str) -> None:
    """Forget a socket; announce its user's leaving if it was their last."""
    try:
        change = await _store().leave(slug, channel_name)
    except Exception as exc:  # the entry expires by itself, and is swept
        logger.warning("presence: leave of %s failed: %r", slug, exc)
        return
    if change is not None:
        _announce_soon(slug, [change])


async def presence_page(
    *, slug: str, after: str | None = None, resync: bool = True
) -> PresencePage | None:
    """One page of the room's present users, in name order, after `after`; None
    when the store cannot be read. With `resync`, the room is then resynced
    once it can be; a resync's own read asks for no other (the refresher
    resyncs the process's rooms once Redis answers again)."""
    try:
        return await _store().page(slug, after, settings.CHAT_PRESENCE_PAGE_SIZE)
    except Exception as exc:
        logger.warning("presence: reading the roster of %s failed: %r", slug, exc)
        if resync:
            _schedule_resync(slug)
        return None


async def user_socket_open(*, user_id: int, channel_name: str) -> int | None:
    """Count a socket among its user's open sockets, over every server process:
    how many the user has open now, this one included (None when Redis could
    not say: the limit goes unchecked rather than refusing everyone)."""
    _start_refresher()
    try:
        return await _sockets().open(user_id, channel_name)
    except Exception as exc:
        logger.warning("presence: counting the sockets of %s failed: %r", user_id, exc)
        return None


async def user_socket_close(*, user_id: int, channel_name: str) -> None:
    try:
        await _sockets().close(user_id, channel_name)
    except Exception as exc:  # its entry expires by itself
        logger.warning("presence: uncounting a socket of %s failed: %r", user_id, exc)


async def typing_allowed(*, slug: str, user_id: int) -> bool:
    """Whether a typing notice of this user in this room may go out now: one per
    CHAT_TYPING_INTERVAL per user and room, whichever socket or process it
    comes from."""
    try:
        return await _sockets().typing_allowed(
            slug, user_id, settings.CHAT_TYPING_INTERVAL
        )
    except Exception as exc:  # a lost typing notice is harmless
        logger.warning("presence: typing check in %s failed: %r", slug, exc)
        return False


# --- Announcing changes ---------------------------------------------------------

# Per event loop: slug -> the changes waiting for their frame.
_pending: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]"
_pending = weakref.WeakKeyDictionary()
# Per event loop: each room's user count at its last announcement.
_sizes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, int]]"
_sizes = weakref.WeakKeyDictionary()
# Per event loop: the slugs with a resync on its way.
_resyncing: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set]"
_resyncing = weakref.WeakKeyDictionary()
_tasks: set[asyncio.Task] = set()  # strong references until they end


def _spawn(coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _announce_soon(slug: str, changes: list[PresenceChange]) -> None:
    pending = _pending.setdefault(asyncio.get_running_loop(), {})
    if slug not in pending:
        pending[slug] = []
        _spawn(_announce(slug, pending))
    pending[slug].extend(changes)


async def _announce(slug: str, pending: dict) -> None:
    sizes = _sizes.setdefault(asyncio.get_running_loop(), {})
    size = sizes.get(slug, 0)
    await asyncio.sleep(max(ANNOUNCE_DELAY, size / ANNOUNCED_DELIVERIES))
    latest: dict[str, PresenceChange] = {}
    for change in pending.pop(slug):
        if change.user not in latest or latest[change.user].version < change.version:
            latest[change.user] = change
    try:
        count = await _store().count(slug)
        if count:
            sizes[slug] = count
        else:
            sizes.pop(slug, None)
        if len(latest) > settings.CHAT_PRESENCE_PAGE_SIZE:
            # More than a page of names: one frame would outgrow what Daphne
            # sends (--websocket-max-message-size), several would cost more
            # than the roster's first page, which says it all in one.
            await events.presence_resync(slug=slug)
            return
        await events.presence_changed(
            slug=slug,
            changes=sorted(latest.values(), key=lambda c: c.version),
            count=count,
        )
    except Exception as exc:
        logger.warning("presence: announcement in %s failed: %r", slug, exc)
        _schedule_resync(slug)


def _schedule_resync(slug: str) -> None:
    """Have every socket of the room get its roster afresh once Redis answers:
    changes were lost, or may have been."""
    resyncing = _resyncing.setdefault(asyncio.get_running_loop(), set())
    if slug not in resyncing:
        resyncing.add(slug)
        _spawn(_resync(slug, resyncing))


async def _resync(slug: str, resyncing: set) -> None:
    delay = RESYNC_DELAY
    try:
        while True:
            await asyncio.sleep(delay)
            try:
                await events.presence_resync(slug=slug)
                return
            except Exception as exc:
                logger.warning("presence: resync of %s failed: %r", slug, exc)
                delay = min(delay * 2, RESYNC_DELAY_MAX)
    finally:
        resyncing.discard(slug)


# --- Keeping Redis entries alive -------------------------------------------------


def _start_refresher() -> None:
    if not settings.REDIS_URL:
        return
    sockets = _sockets()
    if sockets.refresher is None or sockets.refresher.done():
        sockets.refresher = asyncio.ensure_future(_refresh_forever(sockets))


async def _refresh_forever(sockets: "_RedisSockets") -> None:
    store = _store()
    failed = False
    while store.local or sockets.local:
        await asyncio.sleep(settings.CHAT_PRESENCE_TTL / 3)
        try:
            changes, lost = await store.refresh()
            await sockets.refresh()
        except Exception as exc:
            logger.warning("presence: refresh failed: %r", exc)
            failed = True
            continue
        by_room = defaultdict(list)
        for slug, change in changes:
            by_room[slug].append(change)
        for slug, room_changes in by_room.items():
            _announce_soon(slug, room_changes)
        # Redis was away, or lost entries: what happened meanwhile was not
        # announced, or not correctly.
        for slug in {slug for slug, _channel in store.local} if failed else lost:
            _schedule_resync(slug)
        failed = False


# --- A user's sockets and typing notices --------------------------------------------


class _MemorySockets:
    def __init__(self) -> None:
        self.user_sockets: dict[int, set[str]] = defaultdict(set)
        self.typing: dict[tuple[str, int], float] = {}

    async def open(self, user_id: int, channel_name: str) -> int:
        self.user_sockets[user_id].add(channel_name)
        return len(self.user_sockets[user_id])

    async def close(self, user_id: int, channel_name: str) -> None:
        sockets = self.user_sockets.get(user_id, set())
        sockets.discard(channel_name)
        if not sockets:
            self.user_sockets.pop(user_id, None)

    async def typing_allowed(self, slug: str, user_id: int, interval: float) -> bool:
        now = time.monotonic()
        last = self.typing.get((slug, user_id))
        if last is not None and now - last < interval:
            return False
        if len(self.typing) > TYPING_ENTRIES_KEPT:  # a development server's
            self.typing.clear()
        self.typing[(slug, user_id)] = now
        return True


class _RedisSockets:
    """A user's open sockets, one sorted set per user scored by expiry, shared
    by every process; and typing notices, one expiring key per user and room."""

    def __init__(self, redis: aioredis.Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self.local: dict[str, int] = {}  # channel -> user id, this process's
        self.refresher: asyncio.Task | None = None

    @staticmethod
    def key(user_id: int) -> str:
        return f"{settings.REDIS_PREFIX}:sockets:{user_id}"

    async def open(self, user_id: int, channel_name: str) -> int:
        key, now = self.key(user_id), time.time()
        self.local[channel_name] = user_id
        async with self.redis.pipeline(transaction=True) as pipe:
            # Sockets of a process that died without saying goodbye expire.
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {channel_name: now + self.ttl})
            pipe.expire(key, math.ceil(self.ttl * 2))
            pipe.zcard(key)
            *_done, count = await pipe.execute()
        return count

    async def close(self, user_id: int, channel_name: str) -> None:
        if self.local.pop(channel_name, None) is not None:
            await self.redis.zrem(self.key(user_id), channel_name)

    async def typing_allowed(self, slug: str, user_id: int, interval: float) -> bool:
        key = f"{settings.REDIS_PREFIX}:typing:{slug}:{user_id}"
        milliseconds = max(1, round(interval * 1000))
        return bool(await self.redis.set(key, 1, nx=True, px=milliseconds))

    async def refresh(self) -> None:
        now = time.time()
        sockets = list(self.local.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            # XX: only entries still there, or a socket that closed while this
            # pipeline ran would be put back.
            for channel, user_id in sockets:
                pipe.zadd(
                    self.key(user_id), {channel: now + self.ttl}, xx=True, ch=True
                )
                pipe.expire(self.key(user_id), math.ceil(self.ttl * 2))
            counted = (await pipe.execute())[::2]
        for (channel, user_id), updated in zip(sockets, counted, strict=True):
            if not updated and self.local.get(channel) == user_id:
                await self.redis.zadd(self.key(user_id), {channel: now + self.ttl})


# --- One store per event loop -------------------------------------------------------

_memory_store = MemoryPresence()
_memory_sockets = _MemorySockets()
_redis: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple]"
_redis = weakref.WeakKeyDictionary()


def _redis_pair() -> tuple[RedisPresence, _RedisSockets]:
    loop = asyncio.get_running_loop()
    pair = _redis.get(loop)
    if pair is None:
        store = RedisPresence(settings.REDIS_URL, settings.CHAT_PRESENCE_TTL)
        pair = _redis[loop] = (store, _RedisSockets(store.redis, store.ttl))
    return pair


def _store() -> MemoryPresence | RedisPresence:
    return _redis_pair()[0] if settings.REDIS_URL else _memory_store


def _sockets() -> _MemorySockets | _RedisSockets:
    return _redis_pair()[1] if settings.REDIS_URL else _memory_sockets
