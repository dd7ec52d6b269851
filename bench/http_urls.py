"""URLs of the HTTP benchmarks: the project's, plus one minimal view."""

from django.http import HttpResponse
from django.urls import include, path


def minimal(request):
    """A constant response: what a request costs the server and Django alone."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/minimal/", minimal),
    path("", include("chatroom.urls")),
]
