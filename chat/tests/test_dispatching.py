"""
chat.dispatching: the consumer's messages reach dispatch() one at a time, each
source's in order; StopConsumer ends the consumer quietly, other errors are
raised as they are, and a consumer that ends stops waiting on its sources (the
Redis pub/sub layer unsubscribes a channel when its receive() is cancelled).
"""

import asyncio

import pytest
from channels.exceptions import StopConsumer

from chat.dispatching import dispatch_messages


class Source:
    """A queue of messages, and what became of the waits on it."""

    def __init__(self, name: str):
        self.name = name
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = 0

    async def receive(self) -> dict:
        try:
            return await self.queue.get()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def put(self, number: int, **extra) -> None:
        self.queue.put_nowait({"source": self.name, "number": number, **extra})


class Recorder:
    """A dispatch() that takes a while and notes when each message began and
    ended; a message with "raise" raises it."""

    def __init__(self):
        self.log: list[tuple[str, str, int]] = []

    async def dispatch(self, message: dict) -> None:
        self.log.append(("begin", message["source"], message["number"]))
        await asyncio.sleep(0.001)
        if "raise" in message:
            raise message["raise"]
        self.log.append(("end", message["source"], message["number"]))


async def test_messages_are_dispatched_one_at_a_time_each_source_in_order():
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    for number in range(20):
        client.put(number)
        layer.put(number)
    client.put(20, **{"raise": StopConsumer()})

    await asyncio.wait_for(
        dispatch_messages([client.receive, layer.receive], recorder.dispatch), 5
    )

    # Every begin is followed by its own end before the next begin.
    steps = recorder.log[:-1]  # the last message began and raised
    assert all(
        first[0] == "begin" and second == ("end", *first[1:])
        for first, second in zip(steps[::2], steps[1::2], strict=True)
    )
    for name in ("client", "layer"):
        numbers = [number for step, source, number in steps if source == name]
        assert numbers == sorted(numbers), name
    assert [n for s, src, n in steps if src == "client" and s == "end"] == list(
        range(20)
    )


async def test_stop_consumer_ends_it_and_cancels_the_wait_on_the_other_source():
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    client.put(0, **{"raise": StopConsumer()})

    await asyncio.wait_for(
        dispatch_messages([client.receive, layer.receive], recorder.dispatch), 5
    )

    assert layer.cancelled == 1


async def test_an_error_in_a_handler_is_raised_as_it_is():
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    layer.put(0, **{"raise": KeyError("boom")})

    with pytest.raises(KeyError, match="boom"):
        await asyncio.wait_for(
            dispatch_messages([client.receive, layer.receive], recorder.dispatch), 5
        )
    assert client.cancelled == 1


async def test_cancelling_the_consumer_cancels_the_waits():
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    running = asyncio.ensure_future(
        dispatch_messages([client.receive, layer.receive], recorder.dispatch)
    )
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (client.cancelled, layer.cancelled) == (1, 1)
