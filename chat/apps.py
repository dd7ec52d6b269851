from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        # Registers the system checks and connects the account receivers.
        from . import checks, signals  # noqa: F401
