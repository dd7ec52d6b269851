"""
Settings for the HTTP benchmarks: the project's, with the URLs of
bench/http_urls.py (the project's plus one minimal view to compare with).
"""

from chatroom.settings import *  # noqa: F403 - the project's settings, unchanged

ROOT_URLCONF = "bench.http_urls"
