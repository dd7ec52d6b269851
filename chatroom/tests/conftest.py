"""
The `servers` fixture: gunicorn and two Daphne processes started from the
production start scripts (deploy/start-web.sh, deploy/start-ws.sh) on loopback,
against the test database (PostgreSQL) and one Redis channel layer.
"""

import os

import pytest
from django.conf import settings
from django.db import connection

from .live import RUN
from .processes import BASE_DIR, BIN, ServerProcess, free_port


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
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
    for name in ("daphne", "daphne2"):
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
