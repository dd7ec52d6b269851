"""
The echo server the Autobahn testsuite's fuzzing client expects, as a Channels
consumer (the chat's own base class, AsyncWebsocketConsumer) under Django's
settings, for test_autobahn.py to serve with deploy/start-ws.sh's Daphne
command line: every text or binary message comes back as it came. HTTP gets a
plain 200, so the harness's readiness probe works.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatroom.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


async def ok(scope, receive, send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter({"http": ok, "websocket": EchoConsumer.as_asgi()})
