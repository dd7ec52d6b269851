"""
Rate limits, each a moving window:

- how many messages a user may send: CHAT_MESSAGE_RATE_LIMIT, counted per user
  over every socket and HTTP post, across all server processes (the counters
  live in Redis; without REDIS_URL, in this process);
- how many `resume` frames one socket may send: CHAT_RESUME_RATE_LIMIT, and how
  many roster pages it may ask for: CHAT_PRESENCE_RATE_LIMIT, both counted in
  the process that holds the socket.
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
    try:
        retry_after = _hit(limiter, "message", str(user.pk))
    except StorageError as exc:
        # Redis is down. The database is the source of truth and the limit only
        # guards it from floods: let the message through rather than refuse
        # every message of every user.
        logger.warning("message rate limit not checked: %r", exc.storage_error)
        return
    if retry_after:
        raise ChatError(
            "rate_limited",
            f"You are sending messages too fast (at most {_describe(limiter[1])}); "
            f"send it again in {retry_after} s.",
            http_status=429,
            retry_after=retry_after,
        )


def resume_rate_check(*, channel_name: str) -> None:
    """Count one resume by this socket, or raise ChatError("resume_rate_limited")
    when the limit is reached; a refused resume does not count."""
    _socket_rate_check(
        settings.CHAT_RESUME_RATE_LIMIT, "resume", channel_name, "resumes"
    )


def presence_rate_check(*, channel_name: str) -> None:
    """Count one roster page asked for by this socket, or raise
    ChatError("presence_rate_limited") when the limit is reached."""
    _socket_rate_check(
        settings.CHAT_PRESENCE_RATE_LIMIT, "presence", channel_name, "roster pages"
    )


def _socket_rate_check(limit: str, what: str, channel_name: str, plural: str):
    limiter = _limiter(limit, "")  # this process's
    retry_after = _hit(limiter, what, channel_name)
    if retry_after:
        raise ChatError(
            f"{what}_rate_limited",
            f"Too many {plural} (at most {_describe(limiter[1])}); ask again in "
            f"{retry_after} s.",
            http_status=429,
            retry_after=retry_after,
        )


def _hit(
    limiter: tuple[MovingWindowRateLimiter, RateLimitItem] | None,
    namespace: str,
    key: str,
) -> int:
    """Count one hit; 0 if it was within the limit (or there is none), else the
    seconds until one more would be."""
    if limiter is None:
        return 0
    strategy, item = limiter
    if strategy.hit(item, namespace, key):
        return 0
    reset_at = strategy.get_window_stats(item, namespace, key).reset_time
    return max(1, math.ceil(reset_at - time.time()))


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
