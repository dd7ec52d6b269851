"""
Lever "skip_db_hop": no thread hop to close old database connections before
each event a consumer handles.

Since Channels 4.2, AsyncConsumer.dispatch awaits aclose_old_connections()
before every handler: close_old_connections() run in the sync thread, for
every broadcast each recipient handles. A consumer that reaches the database
only through database_sync_to_async, as Django requires of async code,
already has old connections closed on both sides of each call by it, so that
hop does nothing but cost each delivery. This makes it a no-op in
AsyncConsumer.dispatch only; a consumer's disconnect (channels.generic) still
closes them.
"""

import channels.consumer


async def _closed_by_database_sync_to_async() -> None:
    return None


def install() -> None:
    """AsyncConsumer.dispatch looks aclose_old_connections up in its module."""
    channels.consumer.aclose_old_connections = _closed_by_database_sync_to_async
