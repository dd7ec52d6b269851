"""
The baseline: the Channels tutorial's chat, as written there. A consumer joins
its room's group, relays each message to the group, and sends what the group
delivers. No authentication, no database. Served by Daphne:

    DJANGO_SETTINGS_MODULE=bench.baselines.tutorial REDIS_URL=redis://... \\
        daphne -p 9001 bench.baselines.tutorial:application

BENCH_LAYER picks the channel layer: "redis" (RedisChannelLayer, the tutorial's)
or "pubsub" (RedisPubSubChannelLayer, the project's).
"""

import json
import os

import django

# --- settings (this module is its own settings module) -----------------------------

SECRET_KEY = "benchmark-baseline-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
USE_TZ = True
TIME_ZONE = "UTC"
_BACKENDS = {
    "redis": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _BACKENDS[os.environ.get("BENCH_LAYER", "redis")],
        "CONFIG": {
            "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("REDIS_PREFIX", "bench-tutorial"),
        },
    }
}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.baselines.tutorial")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['room']}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data):
        message = json.loads(text_data)["message"]
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"]}))


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/chat/<str:room>/", ChatConsumer.as_asgi())])}
)
