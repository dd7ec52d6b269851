"""
Access is checked for a socket's whole life, not only at its handshake.

Each socket is watched with what let it in (selectors.SocketGrant). Whatever
ends the user's right to the room closes the socket:

- at once when the change goes through Django or this project (chat.signals):
  a saved user (password change, deactivation), a membership removed by the
  service, the admin or the related manager. Those send the user's sockets a
  chat.access event, and each process rechecks its sockets of that user;
- otherwise within CHAT_ACCESS_RECHECK_INTERVAL seconds plus one check: a
  bulk update, SQL, a session deleted or expired. Each server process rechecks
  every socket of its own at that interval, in a few queries for all of them.

A socket whose grant no longer holds is closed with an error frame and the
close code of its reason (docs/protocol.md); until then the consumer serves
nothing once it has been told (ChatConsumer.access_revoked).
"""

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings

from . import selectors
from .outages import database_call
from .selectors import SocketGrant

logger = logging.getLogger(__name__)

Revoke = Callable[[str], Awaitable[None]]


def access_watch(*, channel_name: str, grant: SocketGrant, revoke: Revoke) -> None:
    """Recheck this socket's grant from now on; `revoke(reason)` is awaited once
    if it no longer holds."""
    _watch().add(channel_name, grant, revoke)


def access_unwatch(*, channel_name: str) -> None:
    _watch().sockets.pop(channel_name, None)


def access_recheck_soon(*, channel_name: str) -> None:
    """Recheck this socket's grant in the next batch (chat.access events)."""
    _watch().recheck_soon(channel_name)


class _AccessWatch:
    """The sockets of one event loop (a Daphne process has one)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.sockets: dict[str, tuple[SocketGrant, Revoke]] = {}
        self.pending: set[str] = set()
        self.sweeper: asyncio.Task | None = None
        self.rechecker: asyncio.Task | None = None

    def add(self, channel_name: str, grant: SocketGrant, revoke: Revoke) -> None:
        self.sockets[channel_name] = (grant, revoke)
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = asyncio.ensure_future(self._sweep_forever())

    def recheck_soon(self, channel_name: str) -> None:
        if channel_name not in self.sockets:
            return
        self.pending.add(channel_name)
        # One check for every socket told in the same moment (a user with
        # many tabs, a room cleared of its members).
        if self.rechecker is None or self.rechecker.done():
            self.rechecker = asyncio.ensure_future(self._recheck_pending())

    async def _recheck_pending(self) -> None:
        await asyncio.sleep(0)
        while self.pending:
            channels, self.pending = self.pending, set()
            await self.check(channels)

    async def _sweep_forever(self) -> None:
        while self.sockets:
            await asyncio.sleep(self.interval)
            await self.check(set(self.sockets))

    async def check(self, channels: set[str]) -> None:
        grants = {
            name: self.sockets[name][0] for name in channels if name in self.sockets
        }
        try:
            revoked = await database_sync_to_async(database_call)(
                selectors.socket_grants_revoked, grants=set(grants.values())
            )
        except Exception as exc:  # the database is down: the next check will do
            logger.warning("access check of %d sockets failed: %r", len(grants), exc)
            return
        for name, grant in grants.items():
            reason = revoked.get(grant)
            if reason is not None and name in self.sockets:
                _grant, revoke = self.sockets.pop(name)
                try:
                    await revoke(reason)
                except Exception as exc:  # the socket went meanwhile
                    logger.info("closing revoked socket %s failed: %r", name, exc)


_watches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AccessWatch]"
_watches = weakref.WeakKeyDictionary()


def _watch() -> _AccessWatch:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _AccessWatch(settings.CHAT_ACCESS_RECHECK_INTERVAL)
        _watches[loop] = watch
    return watch
