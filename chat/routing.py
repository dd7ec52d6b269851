from django.urls import path

from . import consumers

websocket_urlpatterns = [
    # Any slug-looking path reaches the consumer, which answers an unknown room
    # with an error frame and close code 4404 instead of a failed handshake.
    path("ws/chat/<str:slug>/", consumers.ChatConsumer.as_asgi(), name="room_socket"),
]

# A URLconf too, so that pages reverse() a socket's path instead of spelling it
# out: reverse("room_socket", urlconf=routing, kwargs={"slug": ...}).
urlpatterns = websocket_urlpatterns
