"""
The consumers' database calls while the database is down.

Daphne makes them one at a time, in the one thread of database_sync_to_async.
With the database down each would wait DB_POOL_TIMEOUT for a pooled connection,
and every send queued behind it would wait as long again before its client
heard anything. A circuit breaker, opened by the first failure, answers the
calls behind it at once; half a second later one call tries the database again.
(A connection of the pool that a database restart cut also fails one call, and
opens the breaker for that half second.)
"""

from collections.abc import Callable
from typing import Any

import pybreaker
from django.db import DatabaseError

# Seconds between two tries of a database that failed.
RETRY_INTERVAL = 0.5

database_breaker = pybreaker.CircuitBreaker(
    fail_max=1,
    reset_timeout=RETRY_INTERVAL,
    # Only the database's failures open it, not a refused message (ChatError).
    exclude=[lambda exc: not isinstance(exc, DatabaseError)],
    throw_new_error_on_trip=False,
    name="database",
)


class DatabaseUnavailable(DatabaseError):
    """Not tried: the database failed a moment ago."""


def database_call(function: Callable, /, *args: Any, **kwargs: Any) -> Any:
    """function(*args, **kwargs), or DatabaseUnavailable at once while the
    breaker is open. Call it in the database thread (database_sync_to_async)."""
    try:
        return database_breaker.call(function, *args, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise DatabaseUnavailable("the database failed a moment ago") from exc
