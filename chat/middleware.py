"""ASGI middleware for the chat's WebSocket stack."""

import logging

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError

logger = logging.getLogger(__name__)

# Set in the scope when the user could not be loaded because the database is down.
AUTH_UNAVAILABLE = "chat.auth_unavailable"


class OutageTolerantAuthMiddleware(AuthMiddleware):
    """Channels' AuthMiddleware, except that a database outage while loading the
    user does not fail the handshake with a traceback: the scope is marked and
    the consumer answers with its documented 'unavailable' close."""

    async def resolve_scope(self, scope):
        try:
            await super().resolve_scope(scope)
        except DatabaseError as exc:
            logger.warning("loading the user of a socket failed: %r", exc)
            scope["user"]._wrapped = AnonymousUser()
            scope[AUTH_UNAVAILABLE] = True


def AuthMiddlewareStack(inner):
    """Channels' stack (cookies, session, user) with the outage-tolerant auth."""
    return CookieMiddleware(SessionMiddleware(OutageTolerantAuthMiddleware(inner)))
