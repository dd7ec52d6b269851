"""Presence in Redis: shared by every server process, and expiring on its own."""

import asyncio
import time

import pytest
from django.conf import settings
from redis import asyncio as aioredis

from chat import presence

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(settings):
    settings.CHAT_PRESENCE_TTL = 1
    client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    slug = f"presence-test-{time.monotonic_ns()}"
    yield client, slug
    await client.delete(presence._RedisPresence.key(slug))
    await client.aclose()


async def test_sockets_of_another_process_are_listed(redis):
    client, slug = redis
    # What another Daphne process writes for its socket.
    await client.zadd(
        presence._RedisPresence.key(slug), {"other.channel\tbob": time.time() + 30}
    )
    await presence.presence_join(slug=slug, channel_name="mine", username="alice")
    assert await presence.presence_list(slug=slug) == ["alice", "bob"]
    await presence.presence_leave(slug=slug, channel_name="mine")
    assert await presence.presence_list(slug=slug) == ["bob"]


async def test_entries_of_a_dead_process_expire(redis):
    client, slug = redis
    await client.zadd(
        presence._RedisPresence.key(slug), {"dead.channel\tghost": time.time() + 0.5}
    )
    assert await presence.presence_list(slug=slug) == ["ghost"]
    await asyncio.sleep(0.7)
    assert await presence.presence_list(slug=slug) == []


async def test_live_sockets_are_refreshed_past_the_ttl(redis):
    _client, slug = redis
    await presence.presence_join(slug=slug, channel_name="live", username="alice")
    await asyncio.sleep(settings.CHAT_PRESENCE_TTL * 2.5)
    assert await presence.presence_list(slug=slug) == ["alice"]
    await presence.presence_leave(slug=slug, channel_name="live")
    assert await presence.presence_list(slug=slug) == []


async def test_expired_entries_are_announced_to_the_room(redis, monkeypatch):
    client, slug = redis
    announced = []

    async def record(*, slug, users):
        announced.append(users)

    monkeypatch.setattr("chat.events.presence_changed", record)
    await client.zadd(
        presence._RedisPresence.key(slug), {"dead.channel\tghost": time.time() + 0.6}
    )
    await presence.presence_join(slug=slug, channel_name="live", username="alice")
    async with asyncio.timeout(3):
        while ["alice"] not in announced:
            await asyncio.sleep(0.05)
    # First the join (the ghost still counted), then the ghost's expiry.
    assert announced == [["alice", "ghost"], ["alice"]]
    await presence.presence_leave(slug=slug, channel_name="live")


class LatePipeline:
    """A store's pipelines, each run 0.1 s late: as the refresh of 10,000
    entries during a disconnect storm, whose commands reach Redis after the
    leaves that started once it had taken its snapshot."""

    def __init__(self, store):
        self.pipeline = store.redis.pipeline

    def __call__(self, *args, **kwargs):
        pipe = self.pipeline(*args, **kwargs)
        execute = pipe.execute

        async def late_execute(*args, **kwargs):
            await asyncio.sleep(0.1)
            return await execute(*args, **kwargs)

        pipe.execute = late_execute
        return pipe


async def test_a_refresh_does_not_bring_back_a_socket_that_left(redis):
    _client, slug = redis
    store = presence._RedisPresence(settings.REDIS_URL, ttl=60)
    try:
        await store.join(slug, "specific.1", "alice")
        store.redis.pipeline = LatePipeline(store)
        refresh = asyncio.ensure_future(store._refresh())
        await asyncio.sleep(0)  # the refresh has its snapshot: alice is in it
        await store.leave(slug, "specific.1")
        await refresh
        assert await store.list(slug) == []
    finally:
        store.refresher.cancel()
        await store.redis.aclose()


async def test_a_refresh_puts_back_a_live_socket_whose_entry_expired(redis):
    client, slug = redis
    store = presence._RedisPresence(settings.REDIS_URL, ttl=60)
    try:
        await store.join(slug, "specific.1", "alice")
        # Redis was away longer than the TTL: another process dropped it.
        await client.delete(presence._RedisPresence.key(slug))
        await store._refresh()
        assert await store.list(slug) == ["alice"]
    finally:
        store.refresher.cancel()
        await store.redis.aclose()


async def test_a_users_sockets_are_counted_over_processes_and_expire(redis):
    client, _slug = redis
    user_id = time.monotonic_ns()  # no real user's
    key = presence._RedisPresence.user_key(user_id)
    # Another process's live socket, and a dead process's expired one.
    await client.zadd(key, {"other.live": time.time() + 30, "dead": time.time() - 1})
    try:
        assert await presence.user_socket_open(user_id=user_id, channel_name="a") == 2
        assert await presence.user_socket_open(user_id=user_id, channel_name="b") == 3
        # Ours outlive the TTL while open (the refresher keeps them).
        await asyncio.sleep(settings.CHAT_PRESENCE_TTL * 2.5)
        await presence.user_socket_close(user_id=user_id, channel_name="a")
        assert set(await client.zrange(key, 0, -1)) == {"other.live", "b"}
    finally:
        await presence.user_socket_close(user_id=user_id, channel_name="b")
        await client.delete(key)


async def test_typing_is_allowed_once_per_interval_per_user_and_room(redis, settings):
    _client, slug = redis
    settings.CHAT_TYPING_INTERVAL = 0.3
    allowed = [
        await presence.typing_allowed(slug=slug, user_id=1) for _ in range(3)
    ] + [await presence.typing_allowed(slug=slug, user_id=2)]
    assert allowed == [True, False, False, True]
    await asyncio.sleep(0.4)
    assert await presence.typing_allowed(slug=slug, user_id=1)
