"""
The chat's JSON API (docs/protocol.md, "HTTP API"). Served by the WSGI app in
production; a message posted here reaches the room's WebSocket clients exactly
like one sent over the socket, because both call services.message_create.
"""

import json

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

from . import protocol, selectors, services
from .errors import ChatError
from .models import Room


def room_messages(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        if not request.user.is_authenticated:
            raise ChatError(
                "not_authenticated",
                "Log in to read and post messages.",
                http_status=401,
            )
        room = selectors.room_get(slug=slug, user=request.user)
        if room is None:
            raise ChatError("room_not_found", "There is no such room.", http_status=404)
        if request.method == "GET":
            return _history(request, room)
        if request.method == "POST":
            return _post(request, room)
        raise ChatError("method_not_allowed", "Use GET or POST.", http_status=405)
    except ChatError as error:
        response = JsonResponse({"error": error.as_dict()}, status=error.http_status)
        if error.http_status == 405:
            response["Allow"] = "GET, POST"
        if error.retry_after is not None:
            response["Retry-After"] = str(error.retry_after)
        return response
    except DatabaseError:
        error = ChatError(
            "unavailable",
            "The database is unavailable; try again with the same client_id.",
            http_status=503,
        )
        return JsonResponse({"error": error.as_dict()}, status=error.http_status)


def _history(request: HttpRequest, room: Room) -> HttpResponse:
    after = _message_id_param(request.GET, "after")
    before = _message_id_param(request.GET, "before")
    if after is not None and before is not None:
        raise ChatError("invalid_cursor", 'Use "before" or "after", not both.')
    limit = _limit_param(request.GET)
    # Under the room's last message: a page cached before a new message is
    # never served after it. Access was checked above, for this request.
    key = f"{room.pk}:{room.last_message_id}:{after}:{before}:{limit}"
    body = caches["chat_history"].get(key)
    if body is None:
        page = selectors.message_list(
            room=room, after=after, before=before, limit=limit
        )
        frames = [protocol.message_frame(message) for message in page.messages]
        body = protocol.encode({"messages": frames, "has_more": page.has_more})
        caches["chat_history"].set(key, body)
    return HttpResponse(body, content_type="application/json")


def _post(request: HttpRequest, room: Room) -> JsonResponse:
    if request.content_type != "application/json":
        raise ChatError(
            "unsupported_media_type",
            "Send a JSON object with Content-Type: application/json.",
            http_status=415,
        )
    try:
        data = json.loads(request.body)
    except RequestDataTooBig:
        raise ChatError(
            "payload_too_large", "The request body is too large.", http_status=413
        ) from None
    except (ValueError, RecursionError):
        raise ChatError("invalid_json", "Send a JSON object.") from None
    if not isinstance(data, dict):
        raise ChatError("invalid_json", "Send a JSON object.")
    client_id = data.get("client_id")
    if client_id is None:  # optional over HTTP; anything else is validated
        client_id = services.new_client_id()
    message, created = services.message_create(
        room=room, author=request.user, body=data.get("body"), client_id=client_id
    )
    return JsonResponse(protocol.message_frame(message), status=201 if created else 200)


def _message_id_param(params: QueryDict, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise ChatError(f"invalid_{name}", f'"{name}" must be a message id.')
    return int(value)


def _limit_param(params: QueryDict) -> int:
    value = params.get("limit")
    maximum = settings.CHAT_HISTORY_MAX_LIMIT
    if value is None or value == "":
        return settings.CHAT_HISTORY_PAGE_SIZE
    if not (value.isascii() and value.isdigit() and len(value) < 10) or not (
        1 <= int(value) <= maximum
    ):
        raise ChatError("invalid_limit", f'"limit" must be between 1 and {maximum}.')
    return int(value)
