"""Fixtures shared by every test: users, rooms, logged-in clients and sockets."""

import os
from collections.abc import AsyncIterator, Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from chat import services
from chat.models import Room

# lab: begin
# The lab's figures (lab/figures.py): its reliability tests and benchmarks
# report what they measured.
pytest_plugins = ["lab.figures"]
# lab: end

REQUIRE_SERVICES = os.environ.get("TESTS_REQUIRE_SERVICES") == "1"
PASSWORD = "a-long-test-password-42"


def pytest_collection_modifyitems(config, items):
    """Mark the system suites by where they live (tests/ starts real servers,
    tests/browser/ drives Chromium too); skip tests whose services are not
    configured, or, with TESTS_REQUIRE_SERVICES=1 (CI), fail."""
    system_tests = config.rootpath / "tests"
    for item in items:
        if item.path.is_relative_to(system_tests):
            item.add_marker(pytest.mark.system)
            if item.path.is_relative_to(system_tests / "browser"):
                item.add_marker(pytest.mark.browser)
    missing = {"redis": [] if settings.REDIS_URL else ["REDIS_URL"]}
    missing["services"] = missing["redis"] + (
        [] if _uses_postgresql() else ["DATABASE_URL (PostgreSQL)"]
    )
    for item in items:
        for marker, names in missing.items():
            if names and item.get_closest_marker(marker):
                if REQUIRE_SERVICES:
                    raise pytest.UsageError(
                        f"TESTS_REQUIRE_SERVICES=1 but {item.nodeid} needs "
                        f"{', '.join(names)}"
                    )
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(names)}"))


def _uses_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture
def make_user(django_user_model) -> Callable:
    def make(username: str = "alice"):
        return django_user_model.objects.create_user(
            username=username, password=PASSWORD
        )

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def room(user) -> Room:
    return services.room_create(slug="general", title="General", created_by=user)


@pytest.fixture
def auth_client(client: Client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def session_cookie() -> Callable:
    """The Cookie header of a logged-in session for a user, one per user."""

    cookies = {}

    def cookie_for(user) -> str:
        if user.pk not in cookies:
            client = Client()
            client.force_login(user)
            name = settings.SESSION_COOKIE_NAME
            cookies[user.pk] = f"{name}={client.cookies[name].value}"
        return cookies[user.pk]

    return cookie_for


@pytest.fixture
async def open_socket(session_cookie) -> AsyncIterator[Callable]:
    """Connect WebSocket clients to the real ASGI application; all are closed after."""
    from chatroom.asgi import application

    communicators = []

    async def connect(
        user=None,
        *,
        slug: str = "general",
        origin: str | None = "http://localhost",
        cookie: str | None = None,
    ):
        """A socket of `user`'s session (one per user), or of `cookie`."""
        headers = [(b"host", b"localhost")]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if user is not None and cookie is None:
            cookie = await _async_cookie(session_cookie, user)
        if cookie is not None:
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(
            application, f"/ws/chat/{slug}/", headers=headers
        )
        communicators.append(communicator)
        connected, _subprotocol = await communicator.connect(timeout=5)
        return communicator, connected

    yield connect
    for communicator in communicators:
        await communicator.disconnect(timeout=5)
    # The consumers' database thread may still hold a connection, which would
    # keep the test database from being dropped at the end of the run.
    await database_sync_to_async(connections.close_all)()


async def _async_cookie(session_cookie, user) -> str:
    # database_sync_to_async closes the thread's connection afterwards, so the
    # test database can be dropped at the end of the run.
    return await database_sync_to_async(session_cookie)(user)


@pytest.fixture(autouse=True)
def fresh_rate_limits(settings):
    """Every test starts with no message counted against the rate limit."""
    from chat.ratelimit import rate_limit_reset

    rate_limit_reset()
    yield
    rate_limit_reset()


@pytest.fixture(autouse=True)
def fresh_socket_counts():
    """Every test starts with no socket counted, no typing notice remembered
    and no one present, whatever an earlier test, or an earlier run killed
    mid-way, left in Redis under the same user ids and room names."""
    from chat import presence

    presence._memory_sockets.user_sockets.clear()
    presence._memory_sockets.typing.clear()
    presence._memory_store.rooms.clear()
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            for kind in ("sockets", "typing", "presence"):
                pattern = f"{settings.REDIS_PREFIX}:{kind}:*"
                for key in client.scan_iter(match=pattern, count=1000):
                    client.delete(key)
        finally:
            client.close()


@pytest.fixture(autouse=True)
def fresh_history_cache():
    """No test is served a page cached by another: SQLite hands a rolled-back
    test's ids out again."""
    from django.core.cache import caches

    caches["chat_history"].clear()


@pytest.fixture(autouse=True)
def database_breaker_closed():
    """A test that takes the database down leaves no open breaker behind."""
    from chat.outages import database_breaker

    database_breaker.close()
    yield
    database_breaker.close()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
