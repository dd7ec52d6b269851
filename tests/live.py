"""
The tests that talk to real gunicorn and Daphne processes: the `servers`
fixture (gunicorn and two Daphne processes started from the production start
scripts, deploy/start-web.sh and deploy/start-ws.sh, on loopback, against the
test database, PostgreSQL, and one Redis channel layer), and WebSocket clients
with a browser's session.
"""

import contextlib
import json
import os
import uuid

import pytest
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect as ws_connect

from chat.tests.roster import Roster

from .processes import BASE_DIR, BIN, ServerProcess, free_port
from .webclient import Browser

# This run's Redis prefix and database connection names.
RUN = f"test-{uuid.uuid4().hex[:8]}"


def open_socket(server, browser: Browser, slug: str, **options):
    session = browser.cookie(settings.SESSION_COOKIE_NAME)
    return ws_connect(
        f"ws://127.0.0.1:{server.port}/ws/chat/{slug}/",
        origin=f"http://127.0.0.1:{server.port}",
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
        open_timeout=10,
        **options,
    )


def receive(socket, frame_type: str) -> dict:
    while True:
        frame = json.loads(socket.recv(timeout=10))
        if frame["type"] == frame_type:
            return frame


def seen_present(socket, users: list[str]) -> None:
    """Read presence frames until the socket's client sees `users` in the room
    (chat/tests/roster.py keeps the view as a client would)."""
    roster = Roster()
    while roster.users != users:
        roster.apply(json.loads(socket.recv(timeout=10)))


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
    with started_servers(tmp_path_factory, ("daphne", "daphne2")) as started:
        yield started


@contextlib.contextmanager
def started_servers(tmp_path_factory, daphnes: tuple[str, ...], **extra_env: str):
    """gunicorn and the named Daphne processes, with `extra_env`; stopped after."""
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}"
    )
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "chatroom.settings",
        "DJANGO_DEBUG": "true",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        # Keep this run's channels apart from anything else on the Redis.
        "REDIS_PREFIX": RUN,
        **extra_env,
    }
    logs = tmp_path_factory.mktemp("server-logs")
    # The production command lines: deploy/start-web.sh and deploy/start-ws.sh.
    gunicorn_port = free_port()
    started = [
        ServerProcess(
            "gunicorn",
            [str(BASE_DIR / "deploy" / "start-web.sh")],
            gunicorn_port,
            env
            | {"GUNICORN_BIND": f"127.0.0.1:{gunicorn_port}", "WEB_CONCURRENCY": "2"},
            logs,
        ),
    ]
    for name in daphnes:
        port = free_port()
        started.append(
            ServerProcess(
                name,
                [str(BASE_DIR / "deploy" / "start-ws.sh")],
                port,
                env
                | {
                    "DAPHNE_BIND": "127.0.0.1",
                    "DAPHNE_PORT": str(port),
                    # Names its database connections in pg_stat_activity.
                    "DATABASE_URL": f"{database_url}?application_name={RUN}-{name}",
                },
                logs,
            )
        )
    try:
        for server in started:
            server.wait_ready()
        yield {server.name: server for server in started}
    finally:
        for server in started:
            server.stop()
