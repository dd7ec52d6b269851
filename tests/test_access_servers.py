"""
Access ends on open sockets, through the real processes (gunicorn and Daphne
from the production start scripts, PostgreSQL, one Redis channel layer): a
change made through Django on gunicorn, or made in the database by this test
process behind Django's back, closes the socket a user holds on Daphne.

`immediate` runs Daphne with the default CHAT_ACCESS_RECHECK_INTERVAL (30 s),
so only the change's own signal can close a socket within the 10 s a frame is
waited for; `periodic` checks every 2 s, to show the bound of changes that
send no signal.
"""

import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from websockets.exceptions import ConnectionClosed

from chat.models import Room

from .live import open_socket, receive, started_servers
from .webclient import PASSWORD, Browser, sign_up

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PERIODIC_INTERVAL = 2


@pytest.fixture(scope="module")
def immediate(django_db_setup, django_db_blocker, tmp_path_factory):
    with started_servers(tmp_path_factory, ("daphne",)) as started:
        yield started


@pytest.fixture(scope="module")
def periodic(django_db_setup, django_db_blocker, tmp_path_factory):
    with started_servers(
        tmp_path_factory,
        ("daphne",),
        CHAT_ACCESS_RECHECK_INTERVAL=str(PERIODIC_INTERVAL),
    ) as started:
        yield started


def closed_by_daphne(socket, since: float) -> tuple[str, int, float]:
    """The error frame's code, the close code and the seconds from `since` (a
    time.monotonic()) until the close; every other frame met on the way must be
    a presence or typing notice."""
    while True:
        frame = json.loads(socket.recv(timeout=10))
        if frame["type"] == "error":
            break
        assert frame["type"] in ("presence", "presence_change", "typing"), frame
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return frame["code"], closed.value.rcvd.code, time.monotonic() - since


def private_room_of(owner: Browser, title: str, *members: str) -> str:
    """A private room made in the lobby, with these members: its slug."""
    status, _ = owner.submit_form(
        "/", {"slug": title.lower(), "title": title, "is_private": "on"}
    )
    assert status == 200
    slug = Room.objects.get(title=title).slug
    for member in members:
        status, _ = owner.submit_form(
            f"/rooms/{slug}/members/add/",
            {"username": member},
            form_page=f"/rooms/{slug}/",
        )
        assert status == 200
    return slug


def test_a_password_change_on_gunicorn_closes_a_stolen_session_on_daphne(immediate):
    gunicorn, daphne = immediate["gunicorn"], immediate["daphne"]
    owner = sign_up(gunicorn.url, "pat")
    owner.submit_form("/", {"slug": "open", "title": "Open"})
    thief = Browser(gunicorn.url)
    status, _ = thief.submit_form(
        "/accounts/login/", {"username": "pat", "password": PASSWORD}
    )
    assert status == 200
    with open_socket(daphne, thief, "open") as stolen:
        receive(stolen, "hello")
        began = time.monotonic()
        status, _ = owner.submit_form(
            "/accounts/password_change/",
            {
                "old_password": PASSWORD,
                "new_password1": "another-long-password-43",
                "new_password2": "another-long-password-43",
            },
        )
        assert status == 200
        code, close_code, _seconds = closed_by_daphne(stolen, began)
    assert (code, close_code) == ("not_authenticated", 4401)
    # The owner's own session lives on: Django kept it with the new password.
    with open_socket(daphne, owner, "open") as socket:
        assert receive(socket, "hello")["user"] == "pat"


def test_a_member_removed_in_the_admin_is_closed_out_of_the_room(immediate):
    gunicorn, daphne = immediate["gunicorn"], immediate["daphne"]
    owner = sign_up(gunicorn.url, "quinn")
    sign_up(gunicorn.url, "rory")
    rory = Browser(gunicorn.url)
    rory.submit_form("/accounts/login/", {"username": "rory", "password": PASSWORD})
    slug = private_room_of(owner, "Vault", "rory")
    # Signed up on gunicorn, so that its password hash is the servers' kind.
    sign_up(gunicorn.url, "root")
    get_user_model().objects.filter(username="root").update(
        is_staff=True, is_superuser=True
    )
    admin = Browser(gunicorn.url)
    status, _ = admin.submit_form(
        "/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"}
    )
    assert status == 200
    room = Room.objects.get(slug=slug)

    with open_socket(daphne, rory, slug) as socket:
        receive(socket, "hello")
        began = time.monotonic()
        status, page = admin.submit_form(
            f"/admin/chat/room/{room.pk}/change/",
            {
                "title": room.title,
                "slug": room.slug,
                "is_private": "on",
                "created_by": str(room.created_by_id),
                "created_at_0": room.created_at.strftime("%Y-%m-%d"),
                "created_at_1": room.created_at.strftime("%H:%M:%S"),
                "members": str(room.created_by_id),  # rory is left out
            },
        )
        assert status == 200 and "was changed successfully" in page, page[-2000:]
        code, close_code, _seconds = closed_by_daphne(socket, began)
    assert (code, close_code) == ("room_not_found", 4404)
    assert list(room.members.values_list("username", flat=True)) == ["quinn"]


def deactivate_in_bulk(username: str, _slug: str) -> None:
    get_user_model().objects.filter(username=username).update(is_active=False)


def remove_membership_in_sql(username: str, slug: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM chat_room_members WHERE room_id ="
            " (SELECT id FROM chat_room WHERE slug = %s) AND user_id ="
            " (SELECT id FROM auth_user WHERE username = %s)",
            [slug, username],
        )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (deactivate_in_bulk, ("not_authenticated", 4401)),
        (remove_membership_in_sql, ("room_not_found", 4404)),
    ],
    ids=["deactivated in bulk", "membership deleted in SQL"],
)
def test_a_change_behind_djangos_back_closes_within_the_interval(
    periodic, change, expected
):
    gunicorn, daphne = periodic["gunicorn"], periodic["daphne"]
    title, member = f"Bulk-{change.__name__[:6]}", f"m-{change.__name__[:6]}"
    owner = sign_up(gunicorn.url, f"o-{change.__name__[:6]}")
    victim = sign_up(gunicorn.url, member)
    slug = private_room_of(owner, title, member)
    with open_socket(daphne, victim, slug) as socket:
        receive(socket, "hello")
        began = time.monotonic()
        change(member, slug)
        # A message posted meanwhile may still reach the socket before the
        # check; none after it, and the socket's own resume replays nothing.
        code, close_code, seconds = closed_by_daphne(socket, began)
    assert (code, close_code) == expected
    assert seconds < PERIODIC_INTERVAL + 5
