from django.urls import include, path

from . import api, views

app_name = "chat"

# The JSON API: its own namespace, so that its errors, CSRF failures included,
# are JSON (the project's CSRF_FAILURE_VIEW).
api_patterns = [
    path("rooms/<slug:slug>/messages/", api.room_messages, name="room_messages"),
]

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("rooms/<slug:slug>/", views.room, name="room"),
    path("rooms/<slug:slug>/members/add/", views.member_add, name="member_add"),
    path(
        "rooms/<slug:slug>/members/remove/", views.member_remove, name="member_remove"
    ),
    path("api/", include((api_patterns, "api"))),
]
