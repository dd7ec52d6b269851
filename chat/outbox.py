"""
The outbox through which sync code hands broadcasts to the channel layer
(chat.events uses it; this module never touches the layer itself).
"""

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine

logger = logging.getLogger(__name__)

# Seconds a broadcast from sync code may take, from its commit, before it is
# given up (its clients will resume it).
SEND_TIMEOUT = 5
# Broadcasts from sync code waiting for the channel layer. Past this many (the
# layer hangs) new ones are dropped and logged: their messages are stored.
MAX_WAITING = 10_000


class Outbox:
    """An event loop in a daemon thread of this process, through which sync code
    (gunicorn's views, Daphne's database thread) hands broadcasts to a Redis
    channel layer, and goes on without waiting for them.

    - One loop, and so one Redis connection, for the life of the process:
      async_to_sync would start a new event loop for every call from a plain
      thread, and the Redis layers keep their connections per loop.
    - The caller does not wait: a Daphne process makes its database calls one
      at a time, in one thread, and waiting there for each publish to come back
      from Redis took much of that thread under many busy rooms.
    - One task sends the broadcasts in the order they were handed over, so a
      room's messages leave in the order they were committed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._sender: asyncio.Task | None = None  # the loop keeps tasks weakly
        self._pid = 0

    def submit(self, coroutine: Coroutine, *, what: str) -> None:
        self._running_loop().call_soon_threadsafe(self._put, coroutine, what)

    def flush(self, *, timeout: float) -> bool:
        with self._lock:
            loop = self._loop if self._pid == os.getpid() else None
        if loop is None:
            return True  # nothing was ever handed over
        # Scheduled after every submit() made before it, so it waits for them.
        done = asyncio.run_coroutine_threadsafe(self._sent(), loop)
        try:
            done.result(timeout)
        except TimeoutError:
            done.cancel()
            return False
        return True

    def _put(self, coroutine: Coroutine, what: str) -> None:
        queue = self._started_queue()
        if queue.qsize() >= MAX_WAITING:
            coroutine.close()
            logger.warning("%s dropped: %i broadcasts are waiting", what, MAX_WAITING)
            return
        deadline = asyncio.get_running_loop().time() + SEND_TIMEOUT
        queue.put_nowait((coroutine, what, deadline))

    async def _sent(self) -> None:
        await self._started_queue().join()

    def _started_queue(self) -> asyncio.Queue:
        # Made in the loop's own thread, with the one task that drains it.
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._sender = asyncio.get_running_loop().create_task(
                self._send_all(self._queue)
            )
        return self._queue

    async def _send_all(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            coroutine, what, deadline = await queue.get()
            try:
                if loop.time() >= deadline:
                    # The layer held up the ones before it: a late broadcast
                    # would arrive after its clients resumed past it.
                    coroutine.close()
                    logger.warning("%s given up: waited %s s", what, SEND_TIMEOUT)
                    continue
                async with asyncio.timeout_at(deadline):
                    await coroutine
            except Exception as exc:
                logger.warning("%s failed: %r", what, exc)
            finally:
                queue.task_done()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked process (gunicorn's workers) inherits no thread: start anew.
            if self._loop is None or self._pid != os.getpid():
                self._loop = asyncio.new_event_loop()
                self._queue = None
                self._pid = os.getpid()
                threading.Thread(
                    target=self._loop.run_forever, name="chat-outbox", daemon=True
                ).start()
            return self._loop
