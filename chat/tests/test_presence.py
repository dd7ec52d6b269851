"""Presence: changes, not rosters; right over several processes, after a dead
process and after Redis lost its data."""

import asyncio
import time

import pytest
from django.conf import settings
from redis import asyncio as aioredis

from chat import presence
from chat.presence_store import MemoryPresence, PresenceChange, RedisPresence


@pytest.fixture
async def slug():
    return f"presence-test-{time.monotonic_ns()}"


async def forget(client, slug):
    async for key in client.scan_iter(match=f"{RedisPresence.room_key(slug)}*"):
        await client.delete(key)


@pytest.fixture
async def redis(slug):
    client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await forget(client, slug)
    await client.aclose()


@pytest.fixture
async def processes(redis):
    """Two server processes' stores on one Redis."""
    stores = [RedisPresence(settings.REDIS_URL, ttl=60) for _ in range(2)]
    yield stores
    for store in stores:
        await store.redis.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request, slug):
    """One store of either kind: they answer alike."""
    if request.param == "memory":
        yield MemoryPresence()
        return
    store = RedisPresence(settings.REDIS_URL, ttl=60)
    yield store
    await forget(store.redis, slug)
    await store.redis.aclose()


async def test_only_a_users_first_socket_in_and_last_out_are_changes(store, slug):
    first = await store.join(slug, "tab.1", "alice")
    assert first > 0
    assert await store.join(slug, "tab.2", "alice") == 0
    second = await store.join(slug, "tab.3", "bob")
    assert second > first
    assert await store.leave(slug, "tab.1") is None
    left = await store.leave(slug, "tab.2")
    assert left == PresenceChange("alice", False, left.version)
    assert left.version > second
    page = await store.page(slug, None, 10)
    assert (page.users, page.count, page.version) == (["bob"], 1, left.version)


async def test_the_roster_comes_in_pages_in_name_order(store, slug):
    names = [f"user{i:03}" for i in range(25)]
    for name in reversed(names):
        await store.join(slug, f"channel.{name}", name)
    pages, after = [], None
    while True:
        page = await store.page(slug, after, 10)
        pages.append(page.users)
        assert page.count == 25 and page.after == after
        if page.next is None:
            break
        after = page.next
    assert [len(users) for users in pages] == [10, 10, 5]
    assert sum(pages, []) == names


@pytest.mark.redis
async def test_a_user_on_two_processes_is_one_presence(processes, slug):
    first, second = processes
    assert await first.join(slug, "a.1", "alice") > 0
    assert await second.join(slug, "b.1", "alice") == 0
    assert await first.leave(slug, "a.1") is None
    change = await second.leave(slug, "b.1")
    assert change is not None and change.user == "alice" and not change.present


@pytest.mark.redis
async def test_a_dead_processs_users_leave_when_another_sweeps(processes, slug):
    dead, live = processes
    dead.ttl = 1  # and it never refreshes: it died
    await dead.join(slug, "dead.1", "ghost")
    await dead.join(slug, "dead.2", "alice")
    await live.join(slug, "live.1", "alice")  # alice has a live socket elsewhere
    joined = (await live.page(slug, None, 10)).version
    await asyncio.sleep(1.2)
    changes, lost = await live.refresh()
    assert [change for _slug, change in changes] == [
        PresenceChange("ghost", False, joined + 1)
    ]
    assert not lost
    assert (await live.page(slug, None, 10)).users == ["alice"]
    # Swept once: the next sweep finds nothing more.
    assert (await live.refresh())[0] == []


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


@pytest.mark.redis
async def test_a_refresh_does_not_bring_back_a_socket_that_left(processes, slug):
    store, _other = processes
    await store.join(slug, "specific.1", "alice")
    store.redis.pipeline = LatePipeline(store)
    refresh = asyncio.ensure_future(store.refresh())
    await asyncio.sleep(0)  # the refresh has its snapshot: alice is in it
    await store.leave(slug, "specific.1")
    changes, lost = await refresh
    assert (changes, lost) == ([], set())
    assert (await store.page(slug, None, 10)).users == []


@pytest.mark.redis
async def test_after_redis_lost_its_data_live_sockets_come_back(processes, redis, slug):
    store, _other = processes
    await store.join(slug, "specific.1", "alice")
    before = (await store.page(slug, None, 10)).version
    await forget(redis, slug)
    changes, lost = await store.refresh()
    assert lost == {slug}
    assert [(s, c.user, c.present) for s, c in changes] == [(slug, "alice", True)]
    # Versions start again from the clock: above what clients already know.
    assert changes[0][1].version > before
    assert (await store.page(slug, None, 10)).users == ["alice"]


@pytest.fixture
def announced(monkeypatch):
    """What chat.presence hands to chat.events, instead of the channel layer."""
    seen = {"changes": [], "resyncs": []}

    async def changed(*, slug, changes, count):
        seen["changes"].append(([(c.user, c.present) for c in changes], count))

    async def resync(*, slug):
        seen["resyncs"].append(slug)

    monkeypatch.setattr("chat.events.presence_changed", changed)
    monkeypatch.setattr("chat.events.presence_resync", resync)
    monkeypatch.setattr(presence, "RESYNC_DELAY", 0.05)
    return seen


async def until(condition, timeout=3.0):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_crowd_joining_at_once_is_announced_in_one_frame(slug, announced):
    for i in range(50):
        await presence.presence_join(slug=slug, channel_name=f"c.{i}", username=f"u{i}")
    await until(lambda: announced["changes"])
    await asyncio.sleep(presence.ANNOUNCE_DELAY * 2)
    ((changes, count),) = announced["changes"]
    assert count == 50 and len(changes) == 50
    assert {present for _user, present in changes} == {True}
    for i in range(50):
        await presence.presence_leave(slug=slug, channel_name=f"c.{i}")
    await until(lambda: len(announced["changes"]) == 2)
    assert announced["changes"][1][1] == 0


async def test_a_large_room_hears_of_changes_less_often(slug, announced, monkeypatch):
    """A room of N users gets a process's presence frames at most
    ANNOUNCED_DELIVERIES / N times a second: a join storm in a big room cannot
    bury its messages under presence frames."""
    monkeypatch.setattr(presence, "ANNOUNCED_DELIVERIES", 20)
    for i in range(50):
        await presence.presence_join(slug=slug, channel_name=f"c.{i}", username=f"u{i}")
    await until(lambda: announced["changes"])
    # 50 users: the next changes are gathered for 50 / 20 = 2.5 s, not 0.2.
    started = time.monotonic()
    await presence.presence_join(slug=slug, channel_name="c.50", username="u50")
    await presence.presence_join(slug=slug, channel_name="c.51", username="u51")
    await presence.presence_leave(slug=slug, channel_name="c.50")
    await until(lambda: len(announced["changes"]) == 2, timeout=6)
    assert time.monotonic() - started >= 2.0
    # What happened meanwhile arrives as one frame, the newest change per user.
    assert announced["changes"][1] == ([("u51", True), ("u50", False)], 51)


async def test_more_changes_than_a_page_send_the_roster_afresh(
    slug, announced, settings
):
    settings.CHAT_PRESENCE_PAGE_SIZE = 10
    for i in range(11):
        await presence.presence_join(slug=slug, channel_name=f"c.{i}", username=f"u{i}")
    await until(lambda: announced["resyncs"])
    await asyncio.sleep(presence.ANNOUNCE_DELAY * 2)
    assert announced == {"changes": [], "resyncs": [slug]}
    # A page's worth is still a change.
    for i in range(10):
        await presence.presence_leave(slug=slug, channel_name=f"c.{i}")
    await until(lambda: announced["changes"])
    assert announced["changes"][0][1] == 1 and len(announced["changes"][0][0]) == 10


@pytest.mark.redis
async def test_a_failed_refresh_is_followed_by_a_resync(
    slug, redis, announced, monkeypatch, settings
):
    settings.CHAT_PRESENCE_TTL = 1  # a refresh every third of a second
    await presence.presence_join(slug=slug, channel_name="c.1", username="alice")
    store = presence._store()
    refresh = store.refresh
    failures = []

    async def fails_once():
        if not failures:
            failures.append(1)
            raise ConnectionError("Redis is away")
        return await refresh()

    monkeypatch.setattr(store, "refresh", fails_once)
    try:
        await until(lambda: announced["resyncs"] == [slug])
    finally:
        await presence.presence_leave(slug=slug, channel_name="c.1")


@pytest.mark.redis
async def test_a_users_sockets_are_counted_over_processes_and_expire(redis, settings):
    settings.CHAT_PRESENCE_TTL = 1
    user_id = time.monotonic_ns()  # no real user's
    key = presence._RedisSockets.key(user_id)
    # Another process's live socket, and a dead process's expired one.
    await redis.zadd(key, {"other.live": time.time() + 30, "dead": time.time() - 1})
    try:
        assert await presence.user_socket_open(user_id=user_id, channel_name="a") == 2
        assert await presence.user_socket_open(user_id=user_id, channel_name="b") == 3
        # Ours outlive the TTL while open (the refresher keeps them).
        await asyncio.sleep(settings.CHAT_PRESENCE_TTL * 2.5)
        await presence.user_socket_close(user_id=user_id, channel_name="a")
        assert set(await redis.zrange(key, 0, -1)) == {"other.live", "b"}
    finally:
        await presence.user_socket_close(user_id=user_id, channel_name="b")
        await redis.delete(key)


@pytest.mark.redis
async def test_typing_is_allowed_once_per_interval_per_user_and_room(
    redis, slug, settings
):
    settings.CHAT_TYPING_INTERVAL = 0.3
    allowed = [
        await presence.typing_allowed(slug=slug, user_id=1) for _ in range(3)
    ] + [await presence.typing_allowed(slug=slug, user_id=2)]
    assert allowed == [True, False, False, True]
    await asyncio.sleep(0.4)
    assert await presence.typing_allowed(slug=slug, user_id=1)


@pytest.mark.redis
async def test_a_socket_whose_join_is_on_its_way_is_not_lost(processes, slug):
    store, _other = processes
    # As a join whose script waits for a pooled connection while the refresh
    # reaches Redis first.
    store.local[(slug, "joining.1")] = "alice"
    store.joining.add((slug, "joining.1"))
    assert await store.refresh() == ([], set())
    assert (await store.page(slug, None, 10)).users == []


@pytest.mark.redis
async def test_a_join_that_failed_is_made_by_the_refresher(
    slug, redis, announced, monkeypatch, settings
):
    settings.CHAT_PRESENCE_TTL = 1
    store = presence._store()
    join_script = store.join_script
    calls = []

    async def away_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("Redis is away")
        return await join_script(*args, **kwargs)

    monkeypatch.setattr(store, "join_script", away_once)
    await presence.presence_join(slug=slug, channel_name="c.1", username="alice")
    try:
        await until(lambda: ([("alice", True)], 1) in announced["changes"])
        assert (await store.page(slug, None, 10)).users == ["alice"]
    finally:
        await presence.presence_leave(slug=slug, channel_name="c.1")


async def test_a_resyncs_own_failed_read_asks_for_no_other(
    slug, announced, monkeypatch
):
    async def unreadable(*args):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(presence._store(), "page", unreadable)
    assert await presence.presence_page(slug=slug, resync=False) is None
    await asyncio.sleep(presence.RESYNC_DELAY * 4)
    assert announced["resyncs"] == []
    assert await presence.presence_page(slug=slug) is None
    await until(lambda: announced["resyncs"] == [slug])
