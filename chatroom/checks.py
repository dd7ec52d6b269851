"""
The project's deployment checks, run by `check --deploy` beside Django's: the
settings that only matter once gunicorn and Daphne run side by side.
"""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_shared_backends(app_configs, **kwargs) -> list[Warning]:
    warnings = []
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if layer == "channels.layers.InMemoryChannelLayer":
        warnings.append(
            Warning(
                "The in-memory channel layer reaches only the process it runs in: "
                "messages posted to gunicorn never reach Daphne's sockets, and two "
                "Daphne processes never see each other's rooms.",
                hint="Set REDIS_URL.",
                id="chatroom.W001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        warnings.append(
            Warning(
                "SQLite is the development database: one writer at a time, on one "
                "machine, shared by every server process.",
                hint="Set DATABASE_URL to a PostgreSQL database.",
                id="chatroom.W002",
            )
        )
    if settings.SECURE_SSL_REDIRECT and not settings.SECURE_PROXY_SSL_HEADER:
        warnings.append(
            Warning(
                "SECURE_SSL_REDIRECT is on but SECURE_PROXY_SSL_HEADER is not set: "
                "behind a proxy that terminates TLS (the nginx of deploy/), every "
                "request looks like plain HTTP and is redirected forever.",
                hint=(
                    "Set DJANGO_SECURE_PROXY_SSL_HEADER=true behind nginx, or "
                    "silence chatroom.W003 if Django itself receives HTTPS."
                ),
                id="chatroom.W003",
            )
        )
    return warnings
