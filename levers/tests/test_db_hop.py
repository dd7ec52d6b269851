"""
Lever "skip_db_hop" (levers/db_hop.py): AsyncConsumer.dispatch stops running
close_old_connections() in the sync thread before every event.
"""

import channels.consumer
import channels.db
import pytest
from channels.consumer import AsyncConsumer

from levers import db_hop


class Recorder(AsyncConsumer):
    def __init__(self):
        self.seen = []

    async def chat_message(self, event):
        self.seen.append(event["n"])


@pytest.fixture
def hops(monkeypatch):
    """Count the calls of close_old_connections() that Channels makes."""
    counted = []
    monkeypatch.setattr(channels.db, "close_old_connections", lambda: counted.append(1))
    # install() below patches Channels; the original comes back afterwards.
    monkeypatch.setattr(
        channels.consumer,
        "aclose_old_connections",
        channels.consumer.aclose_old_connections,
    )
    return counted


async def dispatch_events(count: int) -> list[int]:
    consumer = Recorder()
    for n in range(count):
        await consumer.dispatch({"type": "chat.message", "n": n})
    return consumer.seen


async def test_channels_hops_to_the_sync_thread_before_every_event(hops):
    assert await dispatch_events(5) == [0, 1, 2, 3, 4]
    assert len(hops) == 5


async def test_with_the_lever_events_are_handled_without_the_hop(hops):
    db_hop.install()
    assert await dispatch_events(5) == [0, 1, 2, 3, 4]
    assert hops == []
