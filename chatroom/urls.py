"""URL configuration for chatroom: the HTTP side, served by both WSGI and ASGI."""

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", include("chat.urls")),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
