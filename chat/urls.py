from django.urls import path

from . import api, views

app_name = "chat"

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("rooms/<slug:slug>/", views.room, name="room"),
    path("rooms/<slug:slug>/members/add/", views.member_add, name="member_add"),
    path(
        "rooms/<slug:slug>/members/remove/", views.member_remove, name="member_remove"
    ),
    path("api/rooms/<slug:slug>/messages/", api.room_messages, name="room_messages"),
]
