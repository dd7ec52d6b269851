"""
chat.writes: messages sent while a write is under way are stored together, in
one call; each sender gets its own answer, and one room's messages keep the
order they were sent in.
"""

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import OperationalError

from chat import events, services, writes
from chat.errors import ChatError
from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


class HeldWrites:
    """services.message_create_many, recording each call's client_ids; the
    first call waits in the database thread until released."""

    def __init__(self, monkeypatch, fail_call: int | None = None):
        self.calls: list[list[str]] = []
        self.first_call_started = threading.Event()
        self.release = threading.Event()
        self.fail_call = fail_call
        real = services.message_create_many

        def message_create_many(*, requests):
            self.calls.append([request.client_id for request in requests])
            if len(self.calls) == 1:
                self.first_call_started.set()
                assert self.release.wait(10), "never released"
            if len(self.calls) == self.fail_call:
                raise OperationalError("connection refused")
            return real(requests=requests)

        monkeypatch.setattr(services, "message_create_many", message_create_many)

    async def first_call_under_way(self) -> None:
        assert await asyncio.to_thread(self.first_call_started.wait, 10)


@pytest.fixture
def sent(monkeypatch):
    """The broadcasts, in the order they were handed over."""
    broadcasts = []
    monkeypatch.setattr(
        events,
        "message_created",
        lambda *, message, prev_id: broadcasts.append((message.body, prev_id)),
    )
    return broadcasts


def store(room, author, body, client_id=None):
    request = services.MessageRequest(
        room=room, author=author, body=body, client_id=client_id or body
    )
    return asyncio.create_task(writes.message_store(request))


async def test_messages_sent_meanwhile_are_stored_together_in_order(
    room, user, other_user, monkeypatch, sent
):
    held = HeldWrites(monkeypatch)
    first = store(room, user, "first")
    await held.first_call_under_way()
    waiting = [
        store(room, user, "second"),
        store(room, other_user, "   "),  # refused alone
        store(room, other_user, "third"),
        store(room, user, "first"),  # a retry of the first
    ]
    await asyncio.sleep(0.05)  # all of them wait for the first
    held.release.set()

    message, created = await first
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert held.calls == [["first"], ["second", "   ", "third", "first"]]
    assert created and [type(result) for result in results] == [
        tuple,
        ChatError,
        tuple,
        tuple,
    ]
    assert results[1].code == "empty_body"
    assert results[3] == (message, False)
    second, third = results[0][0], results[2][0]
    assert sent == [("first", None), ("second", message.id), ("third", second.id)]
    stored = await database_sync_to_async(list)(
        Message.objects.values_list("body", flat=True)
    )
    assert stored == ["first", "second", "third"] and second.id < third.id


async def test_a_sender_that_goes_away_still_has_its_message_stored(
    room, user, monkeypatch, sent
):
    held = HeldWrites(monkeypatch)
    first = store(room, user, "first")
    await held.first_call_under_way()
    gone = store(room, user, "gone")
    await asyncio.sleep(0.05)
    gone.cancel()  # its client closed the socket
    held.release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await gone
    # Stored after the call that holds "gone", which ran on without its sender.
    await store(room, user, "later")
    assert [body for body, _ in sent] == ["first", "gone", "later"]


async def test_a_failed_call_fails_each_of_its_messages_and_the_next_goes_on(
    room, user, monkeypatch, sent
):
    held = HeldWrites(monkeypatch, fail_call=2)
    first = store(room, user, "first")
    await held.first_call_under_way()
    lost = [store(room, user, "lost-1"), store(room, user, "lost-2")]
    await asyncio.sleep(0.05)
    held.release.set()
    await first
    for task in lost:
        with pytest.raises(OperationalError):
            await task
    # The client sends it again (chat.consumers answers "unavailable").
    message, created = await store(room, user, "lost-1")
    assert created and held.calls[1:] == [["lost-1", "lost-2"], ["lost-1"]]
    assert [body for body, _ in sent] == ["first", "lost-1"]


async def test_a_batch_size_of_one_stores_each_message_alone(
    room, user, monkeypatch, sent, settings
):
    settings.CHAT_MESSAGE_BATCH_SIZE = 1
    held = HeldWrites(monkeypatch)
    first = store(room, user, "first")
    await held.first_call_under_way()
    waiting = [store(room, user, "second"), store(room, user, "third")]
    await asyncio.sleep(0.05)
    held.release.set()
    await asyncio.gather(first, *waiting)
    assert held.calls == [["first"], ["second"], ["third"]]
    assert [body for body, _ in sent] == ["first", "second", "third"]


async def test_a_batch_size_below_one_still_stores_each_message(
    room, user, sent, settings
):
    """Daphne runs no system check: a 0 from the environment must not leave
    the writer taking empty batches for ever."""
    settings.CHAT_MESSAGE_BATCH_SIZE = 0
    async with asyncio.timeout(10):
        message, created = await store(room, user, "alone")
    assert created and sent == [("alone", None)]


@pytest.mark.django_db(transaction=False)
def test_a_batch_size_below_one_fails_the_system_check(settings):
    settings.CHAT_MESSAGE_BATCH_SIZE = 0
    with pytest.raises(SystemCheckError, match="chat.E003"):
        call_command("check")
