"""Settings come from the environment; with nothing set, nothing is needed."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
ENV_VARIABLES = (
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
)

PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
from django.core.management import get_commands
print(json.dumps({
    "debug": settings.DEBUG,
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "layer_config": settings.CHANNEL_LAYERS["default"].get("CONFIG"),
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "wsgi": settings.WSGI_APPLICATION,
    "asgi": settings.ASGI_APPLICATION,
    "runserver": get_commands()["runserver"],
}))
"""


def load_settings(**variables):
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARIABLES}
    env |= {"DJANGO_SETTINGS_MODULE": "chatroom.settings", **variables}
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_variables_means_an_embedded_development_setup():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["debug"] is True
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["layer"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert loaded["wsgi"] == "chatroom.wsgi.application"
    assert loaded["asgi"] == "chatroom.asgi.application"


def test_runserver_stays_djangos_wsgi_server():
    loaded = json.loads(load_settings().stdout)
    assert loaded["runserver"] in {"django.core", "django.contrib.staticfiles"}


def test_database_url_selects_postgresql():
    loaded = json.loads(
        load_settings(
            DATABASE_URL="postgres://chat:secret@db.internal:5432/chat"
        ).stdout
    )
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["db_name"] == "chat"


def test_redis_url_selects_the_redis_channel_layer():
    loaded = json.loads(load_settings(REDIS_URL="redis://cache:6379/2").stdout)
    assert loaded["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert loaded["layer_config"]["hosts"] == [{"address": "redis://cache:6379/2"}]


def test_secret_key_is_required_when_debug_is_off():
    result = load_settings(DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr

    ok = load_settings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="x" * 50)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["debug"] is False


@pytest.mark.parametrize("name", ["wsgi", "asgi"])
def test_entry_points_import(name):
    result = subprocess.run(
        [sys.executable, "-c", f"import chatroom.{name} as m; print(m.application)"],
        cwd=BASE_DIR,
        env={k: v for k, v in os.environ.items() if k not in ENV_VARIABLES},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_env_example_lists_every_variable_the_settings_read():
    settings_source = (BASE_DIR / "chatroom" / "settings.py").read_text()
    example = (BASE_DIR / ".env.example").read_text()

    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings_source))
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.M))
    assert read, "no env reads found"
    assert read - listed == set()


CONCURRENT_WRITES = """
import threading, django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from chat import services
from chat.models import Message

call_command("migrate", verbosity=0)
user = User.objects.create_user("writer")
room = services.room_create(slug="busy", title="Busy", created_by=user)
failures = []

def write(thread):
    try:
        for n in range(20):
            services.message_create(
                room=room, author=user, body="hi", client_id=f"{thread}-{n}"
            )
    except Exception as exc:
        failures.append(repr(exc))
    finally:
        connection.close()

threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(failures), Message.objects.count(), failures[:1])
"""


def test_default_sqlite_queues_concurrent_writers(tmp_path):
    """runserver and Daphne write from several threads; none may be refused."""
    result = subprocess.run(
        [sys.executable, "-c", CONCURRENT_WRITES],
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k not in ENV_VARIABLES},
            "DJANGO_SETTINGS_MODULE": "chatroom.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["0", "160"], result.stdout
