"""
levers.dispatch keeps the contract of Channels' await_many_dispatch, which
every test here also holds Channels' own to: a consumer's messages reach
dispatch() one at a time, each source's in order; whatever dispatch() raises
(StopConsumer included) ends it and is raised as it is; and a consumer that
ends stops waiting on its sources (the Redis pub/sub layer unsubscribes a
channel when its receive() is cancelled).
"""

import asyncio
import contextlib
import gc

import channels.consumer
import pytest
from channels.exceptions import StopConsumer
from channels.utils import await_many_dispatch as channels_dispatch

from levers import dispatch as lever

IMPLEMENTATIONS = {"channels": channels_dispatch, "lever": lever.await_many_dispatch}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def dispatch_messages(request):
    return IMPLEMENTATIONS[request.param]


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


async def test_messages_are_dispatched_one_at_a_time_each_source_in_order(
    dispatch_messages,
):
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    for number in range(20):
        client.put(number)
        layer.put(number)
    client.put(20, **{"raise": StopConsumer()})

    with pytest.raises(StopConsumer):
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


async def test_stop_consumer_ends_it_and_cancels_the_wait_on_the_other_source(
    dispatch_messages,
):
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    client.put(0, **{"raise": StopConsumer()})

    with pytest.raises(StopConsumer):
        await asyncio.wait_for(
            dispatch_messages([client.receive, layer.receive], recorder.dispatch), 5
        )

    assert layer.cancelled == 1


async def test_an_error_in_a_handler_is_raised_as_it_is(dispatch_messages):
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    layer.put(0, **{"raise": KeyError("boom")})

    with pytest.raises(KeyError, match="boom"):
        await asyncio.wait_for(
            dispatch_messages([client.receive, layer.receive], recorder.dispatch), 5
        )
    assert client.cancelled == 1


async def test_cancelling_the_consumer_cancels_the_waits(dispatch_messages):
    client, layer, recorder = Source("client"), Source("layer"), Recorder()
    running = asyncio.ensure_future(
        dispatch_messages([client.receive, layer.receive], recorder.dispatch)
    )
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (client.cancelled, layer.cancelled) == (1, 1)


class SlowToLeave(Source):
    """A source whose wait, once cancelled, takes a while to clean up, as the
    Redis pub/sub layer's unsubscribe does."""

    def __init__(self, name: str):
        super().__init__(name)
        self.cleaned_up = False

    async def receive(self) -> dict:
        try:
            return await self.queue.get()
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)
            self.cleaned_up = True
            raise


async def test_a_second_cancellation_does_not_cut_a_wait_s_clean_up_short():
    """Daphne cancels a consumer that outlived its close timeout again at every
    check: the lever cancels each wait once and lets it finish."""
    client, layer, recorder = Source("client"), SlowToLeave("layer"), Recorder()
    running = asyncio.ensure_future(
        lever.await_many_dispatch([client.receive, layer.receive], recorder.dispatch)
    )
    await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.sleep(0.01)
    running.cancel()  # mid clean-up
    with pytest.raises(asyncio.CancelledError):
        await running
    assert layer.cleaned_up


def test_install_replaces_the_loop_asyncconsumer_runs(monkeypatch):
    monkeypatch.setattr(channels.consumer, "await_many_dispatch", channels_dispatch)
    lever.install()
    assert channels.consumer.await_many_dispatch is lever.await_many_dispatch


async def test_finished_consumers_leave_nothing_for_the_garbage_collector(
    dispatch_messages,
):
    """No reference cycle keeps a consumer that ended: with the memory lever,
    full collections are rare, and a cycle per consumer would pile up."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            client, layer, recorder = Source("client"), Source("layer"), Recorder()
            client.put(0, **{"raise": StopConsumer})  # a class: no instance kept
            with contextlib.suppress(StopConsumer):
                await dispatch_messages(
                    [client.receive, layer.receive], recorder.dispatch
                )
        del client, layer, recorder
        assert gc.collect() == 0
    finally:
        gc.enable()
