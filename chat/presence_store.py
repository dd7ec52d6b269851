"""
Where presence is kept (chat.presence is its interface): in Redis with
REDIS_URL, so every server process sees the same rooms, or in this process's
memory (the development defaults).

Both stores answer the same questions and report the same changes: a join that
makes a user present, or a leave that takes their last socket out of the room,
returns the room's new presence version; any other join or leave returns 0.
Versions increase with every change of a room and start from the clock, so a
room whose keys were lost (Redis restarted empty) goes on above the versions
its clients know.

In Redis a room is four keys, with the room's slug as hash tag:
  users             sorted set of the present users' names, all scored 0, so
                    that pages come in name order (ZRANGEBYLEX);
  alive             the same names scored by the expiry of their latest socket;
  sockets:<user>    that user's sockets in the room, scored by their expiry;
  version           the room's presence version.
Each change runs as one Lua script, so two processes changing one user at the
same moment (a tab closing on one, another opening on the next) cannot both
decide that the user came or went. Every process refreshes the expiry of its
own sockets every CHAT_PRESENCE_TTL / 3 seconds and sweeps its rooms for users
whose every socket expired: a process that died without saying goodbye has its
users leave, announced by whichever process sweeps them first.
"""

import math
import time
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from redis import asyncio as aioredis

# Redis connections per server process, and seconds to wait for a free one.
POOL_SIZE = 20
POOL_TIMEOUT = 10


@dataclass(frozen=True)
class PresencePage:
    """Present users in name order after `after`, at presence `version`;
    `count` is how many are present in all; `next` the name to ask the next
    page after, or None when this is the last page."""

    users: list[str]
    count: int
    version: int
    after: str | None
    next: str | None


@dataclass(frozen=True)
class PresenceChange:
    user: str
    present: bool
    version: int


def version_start() -> int:
    return time.time_ns() // 1000  # microseconds: exact in a JavaScript number


class MemoryPresence:
    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, str]] = defaultdict(dict)  # channel -> name
        self.versions: dict[str, int] = {}

    def bump(self, slug: str) -> int:
        version = max(self.versions.get(slug, 0) + 1, version_start())
        self.versions[slug] = version
        return version

    def present(self, slug: str, username: str) -> bool:
        return username in self.rooms.get(slug, {}).values()

    async def join(self, slug: str, channel_name: str, username: str) -> int:
        came = not self.present(slug, username)
        self.rooms[slug][channel_name] = username
        return self.bump(slug) if came else 0

    async def leave(self, slug: str, channel_name: str) -> PresenceChange | None:
        room = self.rooms.get(slug, {})
        username = room.pop(channel_name, None)
        if not room:
            self.rooms.pop(slug, None)
        if username is None or self.present(slug, username):
            return None
        return PresenceChange(username, present=False, version=self.bump(slug))

    async def page(self, slug: str, after: str | None, limit: int) -> PresencePage:
        users = sorted(set(self.rooms.get(slug, {}).values()))
        later = [name for name in users if after is None or name > after]
        return PresencePage(
            users=later[:limit],
            count=len(users),
            version=self.versions.get(slug, 0),
            after=after,
            next=later[limit - 1] if len(later) > limit else None,
        )

    async def count(self, slug: str) -> int:
        return len(set(self.rooms.get(slug, {}).values()))


# KEYS: users, alive, sockets, version. ARGV: name, channel, expiry, key ttl,
# version start. Returns the new version if the user was not present, else 0.
# With ARGV[6] = "refresh", a socket that is no longer listed is not added
# back and -1 is returned: it left while the refresh was on its way, or its
# entry expired and its owner decides.
JOIN = """
local name, channel, expiry, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if ARGV[6] == "refresh" and not redis.call("ZSCORE", KEYS[3], channel) then
  return -1
end
redis.call("ZADD", KEYS[3], expiry, channel)
local latest = redis.call("ZSCORE", KEYS[2], name)
if not latest or tonumber(latest) < expiry then
  redis.call("ZADD", KEYS[2], expiry, name)
end
local came = redis.call("ZADD", KEYS[1], 0, name)
for i = 1, 3 do redis.call("EXPIRE", KEYS[i], ttl) end
if redis.call("EXISTS", KEYS[4]) == 0 then
  redis.call("SET", KEYS[4], ARGV[5])
end
redis.call("EXPIRE", KEYS[4], ttl)
if came == 0 then return 0 end
return redis.call("INCR", KEYS[4])
"""

# KEYS: users, alive, sockets, version. ARGV: name, channel, now, version
# start, key ttl. Returns the new version if that was the user's last live
# socket in the room, else 0.
LEAVE = """
local name = ARGV[1]
redis.call("ZREM", KEYS[3], ARGV[2])
redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", ARGV[3])
if redis.call("ZCARD", KEYS[3]) > 0 then return 0 end
redis.call("ZREM", KEYS[2], name)
if redis.call("ZREM", KEYS[1], name) == 0 then return 0 end
if redis.call("EXISTS", KEYS[4]) == 0 then
  redis.call("SET", KEYS[4], ARGV[4], "EX", ARGV[5])
end
return redis.call("INCR", KEYS[4])
"""

# KEYS: users, alive, version. ARGV: now, version start, the sockets keys'
# prefix (the user's name completes it), key ttl. Users whose latest socket
# expired are checked one by one: those with no live socket left leave.
# Returns name, version, name, version...
SWEEP = """
local gone = {}
for _, name in ipairs(redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", ARGV[1])) do
  local sockets = ARGV[3] .. name
  redis.call("ZREMRANGEBYSCORE", sockets, "-inf", ARGV[1])
  local latest = redis.call("ZREVRANGE", sockets, 0, 0, "WITHSCORES")
  if #latest > 0 then
    redis.call("ZADD", KEYS[2], latest[2], name)
  else
    redis.call("ZREM", KEYS[2], name)
    if redis.call("ZREM", KEYS[1], name) == 1 then
      if redis.call("EXISTS", KEYS[3]) == 0 then
        redis.call("SET", KEYS[3], ARGV[2], "EX", ARGV[4])
      end
      table.insert(gone, name)
      table.insert(gone, redis.call("INCR", KEYS[3]))
    end
  end
end
return gone
"""


class RedisPresence:
    """The Redis store of one event loop (a Daphne process has one)."""

    def __init__(self, url: str, ttl: int) -> None:
        # A blocking pool waits for a free connection instead of raising
        # MaxConnectionsError when hundreds of sockets join at the same moment.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_TIMEOUT, decode_responses=True
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.ttl = ttl
        self.join_script = self.redis.register_script(JOIN)
        self.leave_script = self.redis.register_script(LEAVE)
        self.sweep_script = self.redis.register_script(SWEEP)
        # (slug, channel) -> user name, for the sockets of this process.
        self.local: dict[tuple[str, str], str] = {}
        # Those whose join script has not answered yet: not lost if a refresh
        # reaches Redis first.
        self.joining: set[tuple[str, str]] = set()

    @staticmethod
    def room_key(slug: str) -> str:
        return f"{settings.REDIS_PREFIX}:presence:{{{slug}}}"

    def keys(self, slug: str, username: str) -> list[str]:
        room = self.room_key(slug)
        return [f"{room}:users", f"{room}:alive", f"{room}:sockets:{username}"] + [
            f"{room}:version"
        ]

    @property
    def key_ttl(self) -> int:
        # A key outlives its last member only briefly; EXPIRE takes whole seconds.
        return math.ceil(self.ttl * 2)

    async def join(self, slug: str, channel_name: str, username: str) -> int:
        self.local[(slug, channel_name)] = username
        self.joining.add((slug, channel_name))
        try:
            return await self.join_script(
                keys=self.keys(slug, username),
                args=[username, channel_name, time.time() + self.ttl, self.key_ttl]
                + [version_start()],
            )
        finally:
            self.joining.discard((slug, channel_name))

    async def leave(self, slug: str, channel_name: str) -> PresenceChange | None:
        username = self.local.pop((slug, channel_name), None)
        if username is None:
            return None
        version = await self.leave_script(
            keys=self.keys(slug, username),
            args=[username, channel_name, time.time(), version_start(), self.key_ttl],
        )
        return PresenceChange(username, False, version) if version else None

    async def page(self, slug: str, after: str | None, limit: int) -> PresencePage:
        room = self.room_key(slug)
        start = "-" if after is None else f"({after}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebylex(f"{room}:users", start, "+", start=0, num=limit + 1)
            pipe.zcard(f"{room}:users")
            pipe.get(f"{room}:version")
            users, count, version = await pipe.execute()
        return PresencePage(
            users=users[:limit],
            count=count,
            version=int(version or 0),
            after=after,
            next=users[limit - 1] if len(users) > limit else None,
        )

    async def count(self, slug: str) -> int:
        return await self.redis.zcard(f"{self.room_key(slug)}:users")

    async def refresh(self) -> tuple[list[tuple[str, PresenceChange]], set[str]]:
        """Keep this process's sockets alive and sweep its rooms. Returns the
        changes to announce (slug, change) and the rooms where a socket of ours
        had been lost (its entry expired, or Redis lost its data) and was put
        back."""
        now = time.time()
        entries = [
            (key, name) for key, name in self.local.items() if key not in self.joining
        ]
        slugs = sorted({slug for (slug, _channel), _name in entries})
        async with self.redis.pipeline(transaction=False) as pipe:
            for slug in slugs:
                room = self.room_key(slug)
                await self.sweep_script(
                    keys=[f"{room}:users", f"{room}:alive", f"{room}:version"],
                    args=[now, version_start(), f"{room}:sockets:", self.key_ttl],
                    client=pipe,
                )
            for (slug, channel), username in entries:
                await self.join_script(
                    keys=self.keys(slug, username),
                    args=[username, channel, now + self.ttl, self.key_ttl]
                    + [version_start(), "refresh"],
                    client=pipe,
                )
            results = await pipe.execute()
        changes = []
        for slug, gone in zip(slugs, results[: len(slugs)], strict=True):
            for name, version in zip(gone[::2], gone[1::2], strict=True):
                changes.append((slug, PresenceChange(name, False, version)))
        lost = set()
        for ((slug, channel), username), version in zip(
            entries, results[len(slugs) :], strict=True
        ):
            if version == -1 and self.local.get((slug, channel)) == username:
                # Lost while its socket is still here: add it back.
                lost.add(slug)
                version = await self.join(slug, channel, username)
            if version > 0:
                changes.append((slug, PresenceChange(username, True, version)))
        return changes, lost
