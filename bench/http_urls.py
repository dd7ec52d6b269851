"""URLs of the HTTP benchmarks: the project's, plus one minimal view."""

from django.http import HttpResponse
from django.urls import include, path


def minimal(request):
    """A constant response: what a request costs the server and Django alone."""
    return HttpResponse("ok", content_type="text/plain")


def minimal_logged_in(request):
    """The same, for a logged-in user only: what the session and user lookups
    that every API request makes cost on their own."""
    if not request.user.is_authenticated:
        return HttpResponse("log in", status=401, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/minimal/", minimal),
    path("bench/minimal-logged-in/", minimal_logged_in),
    path("", include("chatroom.urls")),
]
