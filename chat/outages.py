"""
The consumers' database calls while the database is down.

Daphne makes them one at a time, in the one thread of database_sync_to_async.
With the database down each would wait DB_POOL_TIMEOUT for a pooled connection,
and every send queued behind it would wait as long again before its client
heard anything. A circuit breaker, opened by a few connection failures in a
row, answers the calls behind them at once; half a second later one call tries
the database again.

Only a lost database counts: a refused message (ChatError), a duplicate
(IntegrityError) or a bug (ProgrammingError) says nothing about the
connection. One failure alone does not open it either: a pooled connection
that a database restart cut fails one call, and the next gets a fresh one.
"""

from collections.abc import Callable
from typing import Any

import pybreaker
from django.db import InterfaceError, OperationalError

# Connection failures in a row that open the breaker.
FAILURES_TO_OPEN = 3
# Seconds between two tries of a database that failed.
RETRY_INTERVAL = 0.5
CONNECTION_FAILURES = (OperationalError, InterfaceError)

database_breaker = pybreaker.CircuitBreaker(
    fail_max=FAILURES_TO_OPEN,
    reset_timeout=RETRY_INTERVAL,
    exclude=[lambda exc: not isinstance(exc, CONNECTION_FAILURES)],
    throw_new_error_on_trip=False,
    name="database",
)


class DatabaseUnavailable(OperationalError):
    """Not tried: the database failed a moment ago."""


def database_call(function: Callable, /, *args: Any, **kwargs: Any) -> Any:
    """function(*args, **kwargs), or DatabaseUnavailable at once while the
    breaker is open. Call it in the database thread (database_sync_to_async)."""
    try:
        return database_breaker.call(function, *args, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise DatabaseUnavailable("the database failed a moment ago") from exc
