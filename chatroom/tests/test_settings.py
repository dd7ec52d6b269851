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
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "DJANGO_SECURE_PROXY_SSL_HEADER",
    "DATABASE_URL",
    "DATABASE_PASSWORD",
    "REDIS_URL",
    "REDIS_PASSWORD",
)
# The production variables of docs/deploy.md, as docker-compose.yml sets them.
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "p8Vq-3nXr_TzK1wYb7HcLm0sJd4Ue9GfAo2iNk6RlPy5QhEvWx",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    "DATABASE_URL": "postgres://chatroom:secret@db:5432/chatroom",
    "REDIS_URL": "redis://redis:6379/0",
}

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


def clean_env(**variables) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.removesuffix("_FILE") not in ENV_VARIABLES
    }
    return env | {"DJANGO_SETTINGS_MODULE": "chatroom.settings", **variables}


def load_settings(**variables):
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def check_deploy(**variables):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=clean_env(**variables),
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


PRINT_SECRETS = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "secret_key": settings.SECRET_KEY,
    "db_password": settings.DATABASES["default"]["PASSWORD"],
    "redis_url": settings.REDIS_URL,
}))
"""


def test_secrets_come_from_the_files_their_file_variables_name(tmp_path):
    """docker-compose.yml's secrets: DJANGO_SECRET_KEY_FILE and the passwords
    apart from their URLs, each file's final newline not part of it."""
    files = {
        "key": "k" * 50 + "\n",
        "db": "pg-pass\n",
        "redis": "r@d:s/pass\n",  # quoted into the URL
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SECRETS],
        cwd=BASE_DIR,
        env=clean_env(
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
            DATABASE_URL="postgres://chat@db:5432/chat",
            DATABASE_PASSWORD_FILE=str(tmp_path / "db"),
            REDIS_URL="redis://redis:6379/0",
            REDIS_PASSWORD_FILE=str(tmp_path / "redis"),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "secret_key": "k" * 50,
        "db_password": "pg-pass",
        "redis_url": "redis://:r%40d%3As%2Fpass@redis:6379/0",
    }


def test_a_missing_secret_file_stops_the_start(tmp_path):
    result = load_settings(
        DJANGO_DEBUG="false", DJANGO_SECRET_KEY_FILE=str(tmp_path / "absent")
    )
    assert result.returncode != 0
    assert "absent" in result.stderr


def test_secret_key_is_required_when_debug_is_off():
    result = load_settings(DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr

    ok = load_settings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="x" * 50)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["debug"] is False


def test_check_deploy_is_clean_with_the_production_variables():
    result = check_deploy(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_with_debug_on():
    result = check_deploy(**(PRODUCTION | {"DJANGO_DEBUG": "true"}))
    assert result.returncode != 0
    # DEBUG, and everything that defaults off with it: HSTS, redirect, cookies.
    for check_id in ("W018", "W004", "W008", "W012", "W016"):
        assert f"security.{check_id}" in result.stderr, check_id


def test_check_deploy_refuses_a_weak_secret_key():
    weak = PRODUCTION | {"DJANGO_SECRET_KEY": "django-insecure-" + "a" * 40}
    result = check_deploy(**weak)
    assert result.returncode != 0
    assert "security.W009" in result.stderr


@pytest.mark.parametrize(
    ("missing", "check_id"),
    [("REDIS_URL", "chatroom.W001"), ("DATABASE_URL", "chatroom.W002")],
)
def test_check_deploy_warns_without_the_shared_backends(missing, check_id):
    result = check_deploy(**{k: v for k, v in PRODUCTION.items() if k != missing})
    assert result.returncode != 0
    assert check_id in result.stderr


def test_check_deploy_warns_about_redirect_loops_behind_a_proxy():
    without_proxy_header = PRODUCTION | {"DJANGO_SECURE_PROXY_SSL_HEADER": "false"}
    result = check_deploy(**without_proxy_header)
    assert "chatroom.W003" in result.stderr
    silenced = check_deploy(
        **without_proxy_header, DJANGO_SILENCED_SYSTEM_CHECKS="chatroom.W003"
    )
    assert silenced.returncode == 0, silenced.stderr


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


def variables_read(path: str, pattern: str) -> set[str]:
    found = set(re.findall(pattern, (BASE_DIR / path).read_text()))
    assert found, f"no variables found in {path}"
    return found


def test_env_example_lists_every_variable_that_is_read():
    read = (
        variables_read("chatroom/settings.py", r'env\.\w+\(\s*"([A-Z_]+)"')
        | variables_read(
            "deploy/gunicorn.conf.py", r'(?:environ\.get|_int)\("([A-Z_]+)"'
        )
        | variables_read("deploy/start-ws.sh", r"\$\{([A-Z_]+):-")
        | variables_read("levers/stop.py", r'environ\.get\("([A-Z_]+)"')
        | variables_read("docker-compose.yml", r"\$\{([A-Z_]+)(?::?[-?])")
    )
    example = (BASE_DIR / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.M))
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
            # One user writes all 160: this is about the database, not the limit.
            "CHAT_MESSAGE_RATE_LIMIT": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["0", "160"], result.stdout
