"""
ASGI config for chatroom: the HTTP views and the WebSocket chat, served by Daphne.

    daphne chatroom.asgi:application

In production nginx sends only /ws/ here; every other path goes to gunicorn
(chatroom.wsgi).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatroom.settings")

# Set up Django (apps, settings) before importing code that uses the ORM.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

# Channels' AuthMiddlewareStack, made to survive a database outage.
from chat.middleware import AuthMiddlewareStack  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
