"""
chat.outages: once the database has failed a few calls in a row, the
consumers' calls behind them are answered at once instead of each waiting for a
connection; a moment later one call tries the database again.
"""

import time

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError, ProgrammingError

from chat.errors import ChatError
from chat.outages import (
    FAILURES_TO_OPEN,
    RETRY_INTERVAL,
    DatabaseUnavailable,
    database_call,
)

from .test_consumers import joined, next_frame, send_message


class Database:
    """A stand-in for a database call that is down until told otherwise."""

    def __init__(self, error: Exception | None = None):
        self.calls = 0
        self.down = True
        self.error = error or OperationalError("connection refused")

    def query(self):
        self.calls += 1
        if self.down:
            raise self.error
        return "row"


def fail(database: Database, times: int) -> None:
    for _ in range(times):
        with pytest.raises(type(database.error)):
            database_call(database.query)


@pytest.mark.parametrize(
    "error",
    [OperationalError("connection refused"), InterfaceError("connection closed")],
)
def test_calls_behind_failures_in_a_row_are_answered_without_trying(error):
    database = Database(error)
    fail(database, FAILURES_TO_OPEN)
    for _ in range(10):
        with pytest.raises(DatabaseUnavailable):
            database_call(database.query)
    assert database.calls == FAILURES_TO_OPEN


def test_one_failure_does_not_open_it():
    """A pooled connection that a database restart cut fails one call; the
    next call gets a fresh connection and must be tried."""
    database = Database()
    assert FAILURES_TO_OPEN > 1
    fail(database, FAILURES_TO_OPEN - 1)
    database.down = False
    assert database_call(database.query) == "row"
    database.down = True
    fail(database, FAILURES_TO_OPEN - 1)  # counted afresh after a success
    database.down = False
    assert database_call(database.query) == "row"


def test_one_call_tries_again_after_the_interval_and_recovers():
    database = Database()
    fail(database, FAILURES_TO_OPEN)
    time.sleep(RETRY_INTERVAL + 0.1)
    fail(database, 1)  # still down: tried, and open again at once
    assert database.calls == FAILURES_TO_OPEN + 1
    with pytest.raises(DatabaseUnavailable):
        database_call(database.query)
    database.down = False
    time.sleep(RETRY_INTERVAL + 0.1)
    assert database_call(database.query) == "row"
    assert database_call(database.query) == "row"
    assert database.calls == FAILURES_TO_OPEN + 3


@pytest.mark.parametrize(
    "error",
    [IntegrityError("duplicate key"), ProgrammingError("no such column")],
)
def test_errors_that_are_not_a_lost_connection_do_not_count(error):
    database = Database(error)
    fail(database, FAILURES_TO_OPEN * 2)
    database.down = False
    assert database_call(database.query) == "row"


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

    def database_down(*, requests):
        calls.extend(request.client_id for request in requests)
        raise OperationalError("connection refused")

    monkeypatch.setattr("chat.services.message_create_many", database_down)
    for number in range(5):
        await send_message(alice, "down?", f"d-{number}")
    errors = [await next_frame(alice, "error") for _ in range(5)]
    assert {(e["code"], e["client_id"]) for e in errors} == {
        ("unavailable", f"d-{number}") for number in range(5)
    }
    # The rest were answered without waiting for the database.
    assert calls == [f"d-{number}" for number in range(FAILURES_TO_OPEN)]
