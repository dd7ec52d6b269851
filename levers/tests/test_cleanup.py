"""
Lever "consumer_cleanup" (levers/cleanup.py), against the Redis pub/sub layer:
a consumer's channel is unsubscribed when the consumer ends, in the two cases
where Channels and channels_redis leave it subscribed, and a WebSocket
consumer that Daphne kills before it dispatched its disconnect still runs its
disconnect handler. Each case also runs without the lever, where something is
left behind: if that stops failing, an upgrade fixed it upstream and that part
of the lever can go (docs/levers.md).
"""

import asyncio
import contextlib
import uuid

import pytest
from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisSingleShardConnection
from redis.asyncio import Redis

from levers import cleanup

pytestmark = pytest.mark.redis


class Idle(AsyncConsumer):
    async def client_stop(self, message):
        raise StopConsumer()

    async def chat_message(self, message):
        pass


@pytest.fixture(params=["on", "off"])
def lever(request, monkeypatch):
    # What install() patches comes back as it was after the test.
    monkeypatch.setattr(AsyncConsumer, "__call__", AsyncConsumer.__call__)
    monkeypatch.setattr(AsyncConsumer, "dispatch", AsyncConsumer.dispatch)
    shard = RedisSingleShardConnection
    monkeypatch.setattr(shard, "unsubscribe", shard.unsubscribe)
    if request.param == "on":
        cleanup.install()
    return request.param


@pytest.fixture
def pubsub_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": settings.REDIS_URL}],
                "prefix": f"test-cleanup-{uuid.uuid4().hex[:8]}",
            },
        }
    }
    return get_channel_layer()


async def subscribers(channel: str) -> int:
    """Subscribers of the channel in Redis itself."""
    from django.conf import settings

    redis = Redis.from_url(settings.REDIS_URL)
    try:
        [(_name, count)] = await redis.pubsub_numsub(channel)
        return count
    finally:
        await redis.aclose()


async def eventually(condition, timeout: float = 3) -> bool:
    """Whether the async `condition` came true within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def started() -> tuple[Idle, asyncio.Queue, asyncio.Task]:
    """An idle consumer, its client's queue, its task: once it is subscribed."""
    consumer, client = Idle(), asyncio.Queue()
    running = asyncio.ensure_future(consumer({"type": "test"}, client.get, None))

    async def subscribed() -> bool:
        channel = getattr(consumer, "channel_name", None)
        return channel is not None and await subscribers(channel) == 1

    assert await eventually(subscribed)
    return consumer, client, running


async def left_subscribed(channel: str) -> bool:
    async def unsubscribed() -> bool:
        return await subscribers(channel) == 0

    return not await eventually(unsubscribed, timeout=1)


async def ended_leaving_subscribed(running: asyncio.Task, channel: str) -> bool:
    """Once the consumer has ended, killed or not: whether `channel` stayed
    subscribed in Redis (the layer is flushed afterwards)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running, 5)
    left = await left_subscribed(channel)
    await get_channel_layer().flush()
    return left


async def test_a_message_arriving_with_the_disconnect(lever, pubsub_layer):
    """django/channels_redis#276: the channel's receive() has returned when
    the consumer ends, so nothing cancels it and nothing unsubscribes."""
    consumer, client, running = await started()
    channel = consumer.channel_name
    # Both in one turn of the loop: Channels handles the client's first.
    pubsub_layer.channels[channel].put_nowait(
        pubsub_layer.serialize({"type": "chat.message"})
    )
    client.put_nowait({"type": "client.stop"})
    left = await ended_leaving_subscribed(running, channel)
    assert left == (lever == "off")


async def test_a_consumer_daphne_cancels_twice(lever, pubsub_layer):
    """Daphne cancels a consumer past --application-close-timeout again at
    every check; the second cancellation lands while the unsubscribe waits
    its turn on the shard's connection (a disconnect storm). Channels' own
    await_many_dispatch runs the consumer."""
    consumer, _client, running = await started()
    channel = consumer.channel_name
    shard = pubsub_layer._get_shard(channel)
    async with shard._lock:  # the connection busy with other unsubscribes
        running.cancel()
        await asyncio.sleep(0.05)
        running.cancel()
        await asyncio.sleep(0.05)
    left = await ended_leaving_subscribed(running, channel)
    assert left == (lever == "off")


async def test_a_consumer_daphne_cancels_while_it_releases_its_channel(
    lever, pubsub_layer
):
    """The first case, with Daphne's cancellations landing while the lever
    releases the channel: a release cut short left a receive() waiting on the
    channel for good, and the channel subscribed (lab/test_load.py's storm
    with the dispatch lever off found it once in a CI run)."""
    consumer, client, running = await started()
    channel = consumer.channel_name
    pubsub_layer.channels[channel].put_nowait(
        pubsub_layer.serialize({"type": "chat.message"})
    )
    client.put_nowait({"type": "client.stop"})
    # Cancelled at every turn of the loop until it ends: one of them lands in
    # the release, whichever step it has reached.
    for _ in range(1000):
        await asyncio.sleep(0)
        if running.done():
            break
        running.cancel()
    left = await ended_leaving_subscribed(running, channel)
    assert left == (lever == "off")


class InAGroup(AsyncWebsocketConsumer):
    """A tutorial-style consumer: it joins a group on connect and leaves it on
    disconnect."""

    group = "lobby"
    disconnects: list[int]

    async def connect(self):
        self.disconnects = []
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        self.disconnects.append(code)
        await self.channel_layer.group_discard(self.group, self.channel_name)


async def test_a_consumer_daphne_kills_before_it_dispatched_the_disconnect(
    lever, pubsub_layer
):
    """The client left and Daphne cancelled the consumer before it had taken
    the websocket.disconnect from its queue (a disconnect storm keeps the loop
    busy past --application-close-timeout): Channels never calls disconnect(),
    and the consumer's group stays subscribed. lab/test_load.py's storm with
    the dispatch lever off left groups and presence entries so in CI."""
    consumer, client = InAGroup(), asyncio.Queue()
    sent = asyncio.Queue()
    client.put_nowait({"type": "websocket.connect"})
    running = asyncio.ensure_future(
        consumer({"type": "websocket"}, client.get, sent.put)
    )
    assert (await asyncio.wait_for(sent.get(), 5))["type"] == "websocket.accept"
    group_channel = pubsub_layer._get_group_channel_name(InAGroup.group)
    assert await subscribers(group_channel) == 1
    # Daphne's disconnect and its kill in one turn of the loop, as when the
    # consumer had no turn between them.
    client.put_nowait({"type": "websocket.disconnect", "code": 1006})
    running.cancel()
    left = await ended_leaving_subscribed(running, group_channel)
    assert left == (lever == "off")
    assert consumer.disconnects == ([] if lever == "off" else [1006])


async def test_a_consumer_that_dispatched_its_disconnect_is_not_disconnected_twice(
    lever, pubsub_layer
):
    consumer, client = InAGroup(), asyncio.Queue()
    sent = asyncio.Queue()
    client.put_nowait({"type": "websocket.connect"})
    running = asyncio.ensure_future(
        consumer({"type": "websocket"}, client.get, sent.put)
    )
    await asyncio.wait_for(sent.get(), 5)
    client.put_nowait({"type": "websocket.disconnect", "code": 1001})
    await asyncio.wait_for(running, 5)

    await pubsub_layer.flush()
    assert consumer.disconnects == [1001]
