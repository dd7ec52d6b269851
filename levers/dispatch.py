"""
Lever "dispatch": a consumer takes its messages, from its client and from the
channel layer, with one task per source for its whole life.

Channels' await_many_dispatch (channels/utils.py), which AsyncConsumer.__call__
runs, waits with asyncio.wait on one task per source and, after every message,
starts a new task for that source: for each recipient of a broadcast, three
steps of the event loop, a new task and a waiter, where the frame's own send
is one. The replacement below keeps Channels' contract: messages reach
dispatch() one at a time and each source's in order, whatever dispatch()
raises (StopConsumer included) ends the loop and is raised, and cancelling it
cancels the waits on the sources, once: a wait that is cleaning up (the Redis
pub/sub layer unsubscribes a channel whose receive() is cancelled) is let
finish even if the consumer is cancelled again.
"""

import asyncio
from collections.abc import Awaitable, Callable

import channels.consumer

Receive = Callable[[], Awaitable[dict]]


async def await_many_dispatch(
    consumer_callables: list[Receive], dispatch: Callable[[dict], Awaitable[None]]
) -> None:
    one_at_a_time = asyncio.Lock()

    async def take_from(receive: Receive) -> None:
        while True:
            message = await receive()
            async with one_at_a_time:
                await dispatch(message)

    try:
        async with asyncio.TaskGroup() as group:
            for receive in consumer_callables:
                group.create_task(take_from(receive))
    except BaseExceptionGroup as ended:
        # The dispatch that raised ended the others: raise what it raised.
        first = ended.exceptions[0]
        # asyncio.TaskGroup (Python 3.11) raises the group from a frame that
        # holds it, and a frame that raises an exception it holds is kept
        # alive by the exception's traceback: reference cycles holding the
        # consumer, which only a full garbage collection frees (the memory
        # lever makes those rare). Cut the group's, then raise without ours.
        ended.__traceback__ = None
    else:
        return  # no source at all
    try:
        raise first
    finally:
        del first


def install() -> None:
    """AsyncConsumer.__call__ looks await_many_dispatch up in its module."""
    channels.consumer.await_many_dispatch = await_many_dispatch
