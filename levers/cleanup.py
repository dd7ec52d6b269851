"""
Lever "consumer_cleanup": a consumer's own channel is unsubscribed when the
consumer ends, and a WebSocket consumer's disconnect handler runs, also when
Daphne kills it.

Daphne kills a consumer that outlived --application-close-timeout after its
client left by cancelling it, and again at every check, once a second. If
the consumer had not yet dispatched the websocket.disconnect Daphne sent it
(a disconnect storm keeps the loop busy), Channels never calls its
disconnect handler: whatever that undoes (groups, presence) stays for good.
Here a killed WebSocket consumer that was connected and had not dispatched
its disconnect dispatches one (code 1006) before it ends.

The Redis pub/sub layer (channels_redis.pubsub) unsubscribes a consumer's
channel only when a pending receive() on it is cancelled, which Channels does
as a consumer ends. Two ways that goes wrong, each leaving the subscription
and its queue in the process for good:

- A message for the channel and the client's disconnect arrive in the same
  turn of the loop: Channels handles the disconnect, and the receive() has
  already returned, so nothing cancels it (django/channels_redis#276). Here a
  consumer that ends releases its channel if the layer still holds it.
- Daphne kills a consumer that outlived --application-close-timeout by
  cancelling it, and again at every check, once a second; an unsubscribe
  waiting its turn on the shard's one connection (a disconnect storm) is cut
  short by the next cancellation (channels_redis logs "Unexpected exception
  while cleaning-up channel"). Here an unsubscribe, once started, finishes
  whatever happens to its caller, and so does the release above: cut short
  between its steps, it left a receive() waiting on the channel for good.
"""

import asyncio
import contextlib
import logging

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisSingleShardConnection

logger = logging.getLogger(__name__)

# Rounds of channel_release: each takes one message left in the channel's queue.
RELEASE_ROUNDS = 10

# The close code Daphne gives a client that went away without a close frame.
ABNORMAL_CLOSURE = 1006

# What a consumer has dispatched, noted on it by _dispatch_noting_the_socket.
CONNECT_DISPATCHED = "_cleanup_connect_dispatched"
DISCONNECT_DISPATCHED = "_cleanup_disconnect_dispatched"

_stock_call = AsyncConsumer.__call__
_stock_dispatch = AsyncConsumer.dispatch
_stock_unsubscribe = RedisSingleShardConnection.unsubscribe


async def _call_and_release(self, scope, receive, send) -> None:
    killed = False
    try:
        await _stock_call(self, scope, receive, send)
    except asyncio.CancelledError:
        killed = True
        raise
    finally:
        if not await _to_the_end(_consumer_end(self, killed=killed)):
            raise asyncio.CancelledError  # the consumer's, once more


async def _consumer_end(consumer: AsyncConsumer, *, killed: bool) -> None:
    if (
        killed
        and getattr(consumer, CONNECT_DISPATCHED, False)
        and not getattr(consumer, DISCONNECT_DISPATCHED, False)
    ):
        try:
            with contextlib.suppress(StopConsumer):
                await consumer.dispatch(
                    {"type": "websocket.disconnect", "code": ABNORMAL_CLOSURE}
                )
        except Exception:
            logger.exception("the disconnect of a killed consumer failed")
    await channel_release(getattr(consumer, "channel_name", None))


async def _dispatch_noting_the_socket(self, message: dict) -> None:
    if message["type"] == "websocket.connect":
        setattr(self, CONNECT_DISPATCHED, True)
    elif message["type"] == "websocket.disconnect":
        setattr(self, DISCONNECT_DISPATCHED, True)
    await _stock_dispatch(self, message)


async def _unsubscribe_to_the_end(self, channel: str) -> None:
    # The caller's clean-up goes on as if the unsubscribe had finished.
    await _to_the_end(_stock_unsubscribe(self, channel))


async def _to_the_end(work) -> bool:
    """Run `work` to its end whatever happens to the caller meanwhile; whether
    the caller saw it end (False: cancelled, the work goes on by itself)."""
    running = asyncio.ensure_future(work)
    running.add_done_callback(_log_failure)
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        if running.cancelled():
            raise
        return False
    return True


def _log_failure(work: asyncio.Future) -> None:
    if not work.cancelled() and work.exception() is not None:
        logger.warning("clean-up failed: %r", work.exception())


async def channel_release(channel_name: str | None) -> None:
    """Unsubscribe a finished consumer's channel if the layer has not."""
    layer = get_channel_layer()
    if channel_name is None or not isinstance(layer, RedisPubSubChannelLayer):
        return
    try:
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
    except Exception as exc:  # the channel layer is down
        logger.warning("releasing channel %s failed: %r", channel_name, exc)


def install() -> None:
    AsyncConsumer.__call__ = _call_and_release
    AsyncConsumer.dispatch = _dispatch_noting_the_socket
    RedisSingleShardConnection.unsubscribe = _unsubscribe_to_the_end
