"""
The consumers' message writes, gathered: group commit.

database_sync_to_async runs all of a Daphne process's database calls in one
thread, one after another. A message stored alone holds that thread for a
thread hop, a connection from the pool, a round trip and a commit, and that
thread capped how many messages a process stored a second. Here a consumer's
message waits while the write before it is in that thread, and then the
messages waiting go in one call: services.message_create_many, one transaction
and, on PostgreSQL, one round trip. Nothing waits on purpose: a message that
finds no write under way goes at once, alone. At most CHAT_MESSAGE_BATCH_SIZE
go in one call (1 stores each alone). One room's messages keep the order they
came in, and each one's broadcast is handed over as the transaction commits
(chat.outbox).
"""

import asyncio
import weakref

from channels.db import database_sync_to_async
from django.conf import settings

from . import services
from .errors import ChatError
from .models import Message
from .outages import database_call


async def message_store(request: services.MessageRequest) -> tuple[Message, bool]:
    """services.message_create, from async code, with the messages that other
    consumers of this process send meanwhile."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer()
    return await writer.store(request)


class _Writer:
    """One event loop's waiting messages, and the one task that stores them."""

    def __init__(self) -> None:
        self._waiting: list[tuple[services.MessageRequest, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def store(self, request: services.MessageRequest) -> tuple[Message, bool]:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._task is None:
            self._task = asyncio.create_task(self._store_waiting())
        # A consumer cancelled meanwhile (its client went) only stops waiting:
        # its message is stored with the others, as it would have been alone.
        return await future

    async def _store_waiting(self) -> None:
        try:
            while self._waiting:
                # At least one: Daphne runs no system check (chat.E003).
                size = max(1, settings.CHAT_MESSAGE_BATCH_SIZE)
                batch = self._waiting[:size]
                del self._waiting[:size]
                await _store(batch)
        finally:
            self._task = None


async def _store(batch: list[tuple[services.MessageRequest, asyncio.Future]]):
    try:
        results = await database_sync_to_async(database_call)(
            services.message_create_many, requests=[request for request, _ in batch]
        )
    except Exception as exc:  # the database failed them all: nothing was stored
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
        return
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, ChatError):
            future.set_exception(result)
        else:
            future.set_result(result)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = (
    weakref.WeakKeyDictionary()
)
