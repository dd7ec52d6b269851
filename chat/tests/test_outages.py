"""
chat.outages: once the database fails, the consumers' calls behind the failed
one are answered at once instead of each waiting for a connection; a moment
later one call tries the database again.
"""

import time

import pytest
from django.db import OperationalError

from chat.errors import ChatError
from chat.outages import RETRY_INTERVAL, DatabaseUnavailable, database_call

from .test_consumers import joined, next_frame, send_message


class Database:
    """A stand-in for a database call that is down until told otherwise."""

    def __init__(self):
        self.calls = 0
        self.down = True

    def query(self):
        self.calls += 1
        if self.down:
            raise OperationalError("connection refused")
        return "row"


def test_calls_behind_a_failure_are_answered_without_trying():
    database = Database()
    with pytest.raises(OperationalError):
        database_call(database.query)
    for _ in range(10):
        with pytest.raises(DatabaseUnavailable):
            database_call(database.query)
    assert database.calls == 1


def test_one_call_tries_again_after_the_interval_and_recovers():
    database = Database()
    with pytest.raises(OperationalError):
        database_call(database.query)
    time.sleep(RETRY_INTERVAL + 0.1)
    with pytest.raises(OperationalError):  # still down: tried, and open again
        database_call(database.query)
    assert database.calls == 2
    database.down = False
    time.sleep(RETRY_INTERVAL + 0.1)
    assert database_call(database.query) == "row"
    assert database_call(database.query) == "row"
    assert database.calls == 4


def test_refused_messages_do_not_count_as_failures():
    def refuse():
        raise ChatError("empty_body", "Type a message first.")

    for _ in range(3):
        with pytest.raises(ChatError):
            database_call(refuse)
    assert database_call(lambda: "ok") == "ok"


@pytest.mark.django_db(transaction=True)
async def test_sends_during_an_outage_all_get_unavailable_at_once(
    open_socket, user, room, monkeypatch
):
    alice, _ = await joined(open_socket, user)
    calls = []

    def database_down(**kwargs):
        calls.append(kwargs["client_id"])
        raise OperationalError("connection refused")

    monkeypatch.setattr("chat.services.message_create", database_down)
    for number in range(5):
        await send_message(alice, "down?", f"d-{number}")
    errors = [await next_frame(alice, "error") for _ in range(5)]
    assert {(e["code"], e["client_id"]) for e in errors} == {
        ("unavailable", f"d-{number}") for number in range(5)
    }
    assert calls == ["d-0"]  # the rest were not queued behind the database
