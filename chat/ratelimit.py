"""
How many messages a user may send: CHAT_MESSAGE_RATE_LIMIT, counted per user in
a moving window over every socket and HTTP post, across all server processes
(the counters live in Redis; without REDIS_URL, in this process).
"""

import logging
import math
import time
from functools import cache

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from .errors import ChatError

logger = logging.getLogger(__name__)


def message_rate_check(*, user: AbstractBaseUser) -> None:
    """Count one message by `user`, or raise ChatError("rate_limited") when the
    limit is reached; a refused message does not count."""
    limiter = _limiter(settings.CHAT_MESSAGE_RATE_LIMIT, settings.REDIS_URL)
    if limiter is None:
        return
    strategy, item = limiter
    key = str(user.pk)
    try:
        if strategy.hit(item, "message", key):
            return
        reset_at = strategy.get_window_stats(item, "message", key).reset_time
    except StorageError as exc:
        # Redis is down. The database is the source of truth and the limit only
        # guards it from floods: let the message through rather than refuse
        # every message of every user.
        logger.warning("message rate limit not checked: %r", exc.storage_error)
        return
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise ChatError(
        "rate_limited",
        f"You are sending messages too fast (at most {_describe(item)}); "
        f"send it again in {retry_after} s.",
        http_status=429,
        retry_after=retry_after,
    )


def rate_limit_reset() -> None:
    """Forget every count (tests; a deploy that changes the limit need not)."""
    try:
        limiter = _limiter(settings.CHAT_MESSAGE_RATE_LIMIT, settings.REDIS_URL)
    except ValueError:  # a limit that does not parse (check chat.E001) counts nothing
        return
    if limiter is not None:
        limiter[0].storage.reset()


@cache
def _limiter(
    limit: str, redis_url: str
) -> tuple[MovingWindowRateLimiter, RateLimitItem] | None:
    # Cached per (setting, Redis): one connection pool per process.
    if not limit:
        return None
    if redis_url:
        storage = storage_from_string(
            redis_url,
            key_prefix=f"{settings.REDIS_PREFIX}:ratelimit",
            wrap_exceptions=True,
            # Fail fast when Redis is away, instead of holding the message.
            socket_timeout=1,
            socket_connect_timeout=1,
        )
    else:
        storage = storage_from_string("memory://", wrap_exceptions=True)
    return MovingWindowRateLimiter(storage), parse(limit)


def _describe(item: RateLimitItem) -> str:
    seconds = item.get_expiry()
    return f"{item.amount} per {seconds} seconds"
