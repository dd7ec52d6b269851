"""Fixtures of the system suites: the real servers (tests/live.py)."""

from .live import servers  # noqa: F401
