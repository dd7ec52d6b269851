"""
Helpers of the tests that talk to real gunicorn and Daphne processes (the
`servers` fixture in conftest.py): WebSocket clients with a browser's session.
"""

import json
import uuid

from django.conf import settings
from websockets.sync.client import connect as ws_connect

from .browser import Browser

# This run's Redis prefix and database connection names.
RUN = f"test-{uuid.uuid4().hex[:8]}"


def open_socket(server, browser: Browser, slug: str, **options):
    session = browser.cookie(settings.SESSION_COOKIE_NAME)
    return ws_connect(
        f"ws://127.0.0.1:{server.port}/ws/chat/{slug}/",
        origin=f"http://127.0.0.1:{server.port}",
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
        open_timeout=10,
        **options,
    )


def receive(socket, frame_type: str) -> dict:
    while True:
        frame = json.loads(socket.recv(timeout=10))
        if frame["type"] == frame_type:
            return frame
