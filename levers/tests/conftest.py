from .servers import daphne  # noqa: F401
