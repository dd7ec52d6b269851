"""The chat's system checks: its settings, on every `manage.py check`."""

from django.conf import settings
from django.core.checks import Error, register
from limits import parse


@register()
def check_chat_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    for name in (
        "CHAT_MESSAGE_RATE_LIMIT",
        "CHAT_RESUME_RATE_LIMIT",
        "CHAT_PRESENCE_RATE_LIMIT",
    ):
        limit = getattr(settings, name)
        try:
            if limit:
                parse(limit)
        except ValueError:
            errors.append(
                Error(
                    f"{name} {limit!r} is not a rate limit.",
                    hint='Write it like "20 per 10 seconds", or leave it empty '
                    "for none.",
                    id="chat.E001",
                )
            )
    if settings.CHAT_MESSAGE_WRITE not in ("statement", "orm"):
        errors.append(
            Error(
                f"CHAT_MESSAGE_WRITE {settings.CHAT_MESSAGE_WRITE!r} is neither "
                '"statement" nor "orm".',
                id="chat.E002",
            )
        )
    if settings.CHAT_MESSAGE_BATCH_SIZE < 1:
        errors.append(
            Error(
                f"CHAT_MESSAGE_BATCH_SIZE is {settings.CHAT_MESSAGE_BATCH_SIZE}; "
                "a batch holds at least one message.",
                hint="1 stores each message alone.",
                id="chat.E003",
            )
        )
    return errors
