"""
Who is in each room, how many sockets each user has open, and who may say they
are typing.

With REDIS_URL set, presence lives in Redis so every server process sees the
same list: one sorted set per room whose members are "<channel>\\t<username>"
scored by their expiry time, and one per user whose members are its sockets'
channels. Each process refreshes the entries of its own
sockets every CHAT_PRESENCE_TTL / 3 seconds in one pipeline, so the entries of
a process that dies without saying goodbye expire on their own. Without Redis
(the development defaults) presence is kept in this process's memory.

Presence is best effort: if Redis is unreachable the chat goes on without it.
"""

import asyncio
import logging
import time
import weakref
from collections import defaultdict

from django.conf import settings
from redis import asyncio as aioredis

from . import events

logger = logging.getLogger(__name__)

SEPARATOR = "\t"
# Typing notices remembered by the in-memory store before it starts afresh.
TYPING_ENTRIES_KEPT = 10_000
# Redis connections per server process, and seconds to wait for a free one.
POOL_SIZE = 20
POOL_TIMEOUT = 10


async def presence_join(*, slug: str, channel_name: str, username: str) -> None:
    """Record a socket in a room and announce the room's users soon."""
    try:
        await _store().join(slug, channel_name, username)
    except Exception as exc:
        logger.warning("presence: join of %s failed: %r", slug, exc)
    _schedule_announcement(slug)


async def presence_leave(*, slug: str, channel_name: str) -> None:
    """Forget a socket and announce the room's remaining users soon."""
    try:
        await _store().leave(slug, channel_name)
    except Exception as exc:
        logger.warning("presence: leave of %s failed: %r", slug, exc)
    _schedule_announcement(slug)


async def presence_list(*, slug: str) -> list[str]:
    """The room's users, sorted, each once however many sockets they have."""
    return await _store().list(slug)


async def user_socket_open(*, user_id: int, channel_name: str) -> int | None:
    """Count a socket among its user's open sockets, over every server process:
    how many the user has open now, this one included (None when Redis could
    not say: the limit goes unchecked rather than refusing everyone)."""
    try:
        return await _store().user_socket_open(user_id, channel_name)
    except Exception as exc:
        logger.warning("presence: counting the sockets of %s failed: %r", user_id, exc)
        return None


async def user_socket_close(*, user_id: int, channel_name: str) -> None:
    try:
        await _store().user_socket_close(user_id, channel_name)
    except Exception as exc:  # its entry expires by itself
        logger.warning("presence: uncounting a socket of %s failed: %r", user_id, exc)


async def typing_allowed(*, slug: str, user_id: int) -> bool:
    """Whether a typing notice of this user in this room may go out now: one per
    CHAT_TYPING_INTERVAL per user and room, whichever socket or process it
    comes from."""
    try:
        return await _store().typing_allowed(
            slug, user_id, settings.CHAT_TYPING_INTERVAL
        )
    except Exception as exc:  # a lost typing notice is harmless
        logger.warning("presence: typing check in %s failed: %r", slug, exc)
        return False


# Joins and leaves are announced once per room per ANNOUNCE_DELAY and per
# process: a storm of 200 sockets joining sends a handful of presence frames to
# each socket, not 200.
ANNOUNCE_DELAY = 0.2
_pending: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]"
_pending = weakref.WeakKeyDictionary()


def _schedule_announcement(slug: str) -> None:
    pending = _pending.setdefault(asyncio.get_running_loop(), {})
    if slug not in pending:
        pending[slug] = asyncio.ensure_future(_announce(slug, pending))


async def _announce(slug: str, pending: dict) -> None:
    await asyncio.sleep(ANNOUNCE_DELAY)
    del pending[slug]
    try:
        users = await presence_list(slug=slug)
        await events.presence_changed(slug=slug, users=users)
    except Exception as exc:
        logger.warning("presence: announcement in %s failed: %r", slug, exc)


class _MemoryPresence:
    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, str]] = defaultdict(dict)
        self.user_sockets: dict[int, set[str]] = defaultdict(set)
        self.typing: dict[tuple[str, int], float] = {}

    async def user_socket_open(self, user_id: int, channel_name: str) -> int:
        self.user_sockets[user_id].add(channel_name)
        return len(self.user_sockets[user_id])

    async def user_socket_close(self, user_id: int, channel_name: str) -> None:
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

    async def join(self, slug: str, channel_name: str, username: str) -> None:
        self.rooms[slug][channel_name] = username

    async def leave(self, slug: str, channel_name: str) -> None:
        room = self.rooms.get(slug, {})
        room.pop(channel_name, None)
        if not room:
            self.rooms.pop(slug, None)

    async def list(self, slug: str) -> list[str]:
        return sorted(set(self.rooms.get(slug, {}).values()))


class _RedisPresence:
    """The Redis store of one event loop (a Daphne process has one)."""

    def __init__(self, url: str, ttl: int) -> None:
        # A blocking pool waits for a free connection instead of raising
        # MaxConnectionsError when hundreds of sockets join at the same moment.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_TIMEOUT, decode_responses=True
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.ttl = ttl
        # (slug, channel) -> member, for the sockets of this process.
        self.local: dict[tuple[str, str], str] = {}
        # channel -> user id, for the sockets of this process.
        self.user_local: dict[str, int] = {}
        self.refresher: asyncio.Task | None = None

    @staticmethod
    def key(slug: str) -> str:
        return f"{settings.REDIS_PREFIX}:presence:{slug}"

    @staticmethod
    def user_key(user_id: int) -> str:
        return f"{settings.REDIS_PREFIX}:sockets:{user_id}"

    async def user_socket_open(self, user_id: int, channel_name: str) -> int:
        key, now = self.user_key(user_id), time.time()
        self.user_local[channel_name] = user_id
        self._start_refresher()
        async with self.redis.pipeline(transaction=True) as pipe:
            # Sockets of a process that died without saying goodbye expire.
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {channel_name: now + self.ttl})
            pipe.expire(key, self.ttl * 2)
            pipe.zcard(key)
            *_done, count = await pipe.execute()
        return count

    async def user_socket_close(self, user_id: int, channel_name: str) -> None:
        if self.user_local.pop(channel_name, None) is not None:
            await self.redis.zrem(self.user_key(user_id), channel_name)

    async def typing_allowed(self, slug: str, user_id: int, interval: float) -> bool:
        key = f"{settings.REDIS_PREFIX}:typing:{slug}:{user_id}"
        milliseconds = max(1, round(interval * 1000))
        return bool(await self.redis.set(key, 1, nx=True, px=milliseconds))

    async def join(self, slug: str, channel_name: str, username: str) -> None:
        member = f"{channel_name}{SEPARATOR}{username}"
        self.local[(slug, channel_name)] = member
        self._start_refresher()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key(slug), {member: time.time() + self.ttl})
            # The key itself outlives its last member only briefly.
            pipe.expire(self.key(slug), self.ttl * 2)
            await pipe.execute()

    async def leave(self, slug: str, channel_name: str) -> None:
        member = self.local.pop((slug, channel_name), None)
        if member is not None:
            await self.redis.zrem(self.key(slug), member)

    async def list(self, slug: str) -> list[str]:
        key = self.key(slug)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zrange(key, 0, -1)
            _removed, members = await pipe.execute()
        return sorted({member.split(SEPARATOR, 1)[1] for member in members})

    def _start_refresher(self) -> None:
        if self.refresher is None or self.refresher.done():
            self.refresher = asyncio.ensure_future(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while self.local or self.user_local:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._refresh()
            except Exception as exc:
                logger.warning("presence: refresh failed: %r", exc)

    async def _refresh(self) -> None:
        now = time.time()
        entries = list(self.local.items())
        sockets = list(self.user_local.items())
        slugs = sorted({slug for (slug, _channel), _member in entries})
        async with self.redis.pipeline(transaction=False) as pipe:
            # Drop what other (dead) processes left behind in our rooms...
            for slug in slugs:
                pipe.zremrangebyscore(self.key(slug), "-inf", now)
            # ...and keep our own sockets alive. XX: only entries still there, or
            # a socket that left while this pipeline ran would be put back.
            for (slug, _channel), member in entries:
                pipe.zadd(self.key(slug), {member: now + self.ttl}, xx=True, ch=True)
                pipe.expire(self.key(slug), self.ttl * 2)
            for channel, user_id in sockets:
                key = self.user_key(user_id)
                pipe.zadd(key, {channel: now + self.ttl}, xx=True, ch=True)
                pipe.expire(key, self.ttl * 2)
            results = await pipe.execute()
        # The pipeline answers the removals first, one per room.
        for slug, removed in zip(slugs, results[: len(slugs)], strict=True):
            if removed:
                _schedule_announcement(slug)
        # An entry of ours that was not there expired while Redis was away or
        # this process was late: add it again if its socket is still here.
        rooms_end = len(slugs) + 2 * len(entries)
        refreshed = results[len(slugs) : rooms_end : 2]
        for ((slug, channel), member), updated in zip(entries, refreshed, strict=True):
            if not updated and self.local.get((slug, channel)) == member:
                await self.redis.zadd(self.key(slug), {member: now + self.ttl})
                _schedule_announcement(slug)
        counted = results[rooms_end::2]
        for (channel, user_id), updated in zip(sockets, counted, strict=True):
            if not updated and self.user_local.get(channel) == user_id:
                await self.redis.zadd(self.user_key(user_id), {channel: now + self.ttl})


_memory_store = _MemoryPresence()
_redis_stores: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _RedisPresence]"
_redis_stores = weakref.WeakKeyDictionary()


def _store() -> _MemoryPresence | _RedisPresence:
    if not settings.REDIS_URL:
        return _memory_store
    loop = asyncio.get_running_loop()
    store = _redis_stores.get(loop)
    if store is None:
        store = _RedisPresence(settings.REDIS_URL, settings.CHAT_PRESENCE_TTL)
        _redis_stores[loop] = store
    return store
