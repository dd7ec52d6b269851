"""
How the consumer takes its messages, from its client and from the channel layer:
one at a time, as Channels' await_many_dispatch hands them over, for less work
per message.

await_many_dispatch waits with asyncio.wait on one task per source and, after
every message, starts a new task for that source: for each recipient of a
broadcast, three steps of the event loop, a new task and a waiter, where the
frame's own send is one. Here each source has one task for the consumer's
life that takes a message and dispatches it itself, and a lock keeps two
dispatches from overlapping (bench/LEVERS.md).
"""

import asyncio
from collections.abc import Awaitable, Callable

from channels.exceptions import StopConsumer

Receive = Callable[[], Awaitable[dict]]


async def dispatch_messages(
    sources: list[Receive], dispatch: Callable[[dict], Awaitable[None]]
) -> None:
    """Hand every message of every source to `dispatch`, one at a time and each
    source's in order, until a dispatch raises: StopConsumer (the client has
    gone) returns, anything else is raised as it is. Cancelling this cancels
    the waits on the sources, as Channels does when a consumer ends."""
    one_at_a_time = asyncio.Lock()

    async def take_from(receive: Receive) -> None:
        while True:
            message = await receive()
            async with one_at_a_time:
                await dispatch(message)

    try:
        async with asyncio.TaskGroup() as group:
            for receive in sources:
                group.create_task(take_from(receive))
    except BaseExceptionGroup as ended:
        raised = [e for e in ended.exceptions if not isinstance(e, StopConsumer)]
        if raised:
            raise raised[0] from None
