"""The chat's HTML pages: the lobby and a room. The JSON API is in chat.api."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import routing, selectors, services
from .errors import ChatError
from .forms import MemberForm, RoomForm
from .models import Room


def lobby(request: HttpRequest) -> HttpResponse:
    form = RoomForm()
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        form = RoomForm(request.POST)
        if form.is_valid():
            try:
                room = services.room_create(
                    slug=form.cleaned_data["slug"],
                    title=form.cleaned_data["title"],
                    created_by=request.user,
                    is_private=form.cleaned_data["is_private"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return redirect("chat:room", slug=room.slug)
    return render(
        request,
        "chat/lobby.html",
        {"rooms": selectors.room_list(user=request.user), "form": form},
    )


@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    room = _visible_room(request, slug)
    page = selectors.message_list(room=room, limit=settings.CHAT_HISTORY_PAGE_SIZE)
    messages = page.messages
    chat_config = {
        "room": room.slug,
        "title": room.title,
        "user": request.user.get_username(),
        "ws_path": reverse("room_socket", urlconf=routing, kwargs={"slug": room.slug}),
        "api_url": reverse("chat:api:room_messages", kwargs={"slug": room.slug}),
        "last_id": messages[-1].id if messages else None,
        "max_body_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "poll_interval_ms": settings.CHAT_POLL_INTERVAL_MS,
    }
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "recent_messages": messages,
            "has_older": page.has_more,
            "chat_config": chat_config,
            "members": (
                selectors.room_member_usernames(room=room) if room.is_private else []
            ),
            "is_owner": room.created_by_id == request.user.pk,
            "member_form": MemberForm(),
        },
    )


@require_POST
@login_required
def member_add(request: HttpRequest, slug: str) -> HttpResponse:
    room = _visible_room(request, slug)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            services.room_member_add(
                room=room, username=form.cleaned_data["username"], added_by=request.user
            )
        except ChatError as error:
            messages.error(request, error.detail)
    else:
        messages.error(request, "Type the username of the member to add.")
    return redirect("chat:room", slug=room.slug)


@require_POST
@login_required
def member_remove(request: HttpRequest, slug: str) -> HttpResponse:
    room = _visible_room(request, slug)
    user_model = get_user_model()
    user = user_model._default_manager.filter(
        **{user_model.USERNAME_FIELD: request.POST.get("username", "")},
        chat_rooms=room,
    ).first()
    if user is None:
        messages.error(request, "That user is not a member of this room.")
        return redirect("chat:room", slug=room.slug)
    try:
        services.room_member_remove(room=room, user=user, removed_by=request.user)
    except ChatError as error:
        messages.error(request, error.detail)
        return redirect("chat:room", slug=room.slug)
    if user.pk == request.user.pk:  # left the room: it is gone for them
        return redirect("chat:lobby")
    return redirect("chat:room", slug=room.slug)


def _visible_room(request: HttpRequest, slug: str) -> Room:
    room = selectors.room_get(slug=slug, user=request.user)
    if room is None:
        raise Http404("There is no such room.")
    return room
