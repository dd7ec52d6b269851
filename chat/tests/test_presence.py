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
