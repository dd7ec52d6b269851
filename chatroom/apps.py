from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package as an app, for what belongs to the site rather than
    to one app: its deployment checks (checks.py)."""

    name = "chatroom"

    def ready(self) -> None:
        from . import checks  # noqa: F401
