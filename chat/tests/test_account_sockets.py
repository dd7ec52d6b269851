"""
A user's open sockets close soon after that user logs out (the sockets of that
session) or the account is deactivated (all of them), with the documented
not_authenticated error frame and close code 4401.
"""

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client
from django.urls import reverse

from chat.models import Message
from chat.protocol import CloseCode

from .test_consumers import next_frame, send_message

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(user) -> tuple[Client, str]:
    """A browser of its own for `user`, and the Cookie header of its session."""
    browser = Client()
    browser.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return browser, f"{name}={browser.cookies[name].value}"


async def session_socket(open_socket, cookie):
    socket, connected = await open_socket(cookie=cookie)
    assert connected
    await next_frame(socket, "hello")
    return socket


async def closed_with(socket) -> tuple[str, int]:
    error = await next_frame(socket, "error")
    close = await socket.receive_output(timeout=3)
    assert close["type"] == "websocket.close"
    return error["code"], close["code"]


async def test_logging_out_closes_the_sockets_of_that_session(open_socket, user, room):
    laptop, laptop_cookie = await database_sync_to_async(logged_in)(user)
    _phone, phone_cookie = await database_sync_to_async(logged_in)(user)
    on_laptop = await session_socket(open_socket, laptop_cookie)
    on_phone = await session_socket(open_socket, phone_cookie)

    response = await database_sync_to_async(laptop.post)(reverse("logout"))
    assert response.status_code == 302

    assert await closed_with(on_laptop) == (
        "not_authenticated",
        CloseCode.NOT_AUTHENTICATED,
    )
    # The phone's session is still logged in: its socket goes on.
    await send_message(on_phone, "still here", "p-1")
    assert (await next_frame(on_phone, "message"))["body"] == "still here"


async def test_a_socket_sends_nothing_after_its_session_logged_out(
    open_socket, user, room
):
    laptop, cookie = await database_sync_to_async(logged_in)(user)
    socket = await session_socket(open_socket, cookie)
    await database_sync_to_async(laptop.post)(reverse("logout"))
    await closed_with(socket)
    # A late frame from the client is not served.
    await send_message(socket, "too late", "late-1")
    assert not await database_sync_to_async(Message.objects.exists)()


async def test_deactivating_an_account_closes_all_its_sockets(
    open_socket, user, other_user, room
):
    _laptop, laptop_cookie = await database_sync_to_async(logged_in)(user)
    _phone, phone_cookie = await database_sync_to_async(logged_in)(user)
    sockets = [
        await session_socket(open_socket, laptop_cookie),
        await session_socket(open_socket, phone_cookie),
    ]
    bob = await session_socket(
        open_socket, (await database_sync_to_async(logged_in)(other_user))[1]
    )

    def deactivate():
        user.is_active = False
        user.save(update_fields=["is_active"])

    await database_sync_to_async(deactivate)()

    for socket in sockets:
        assert await closed_with(socket) == (
            "not_authenticated",
            CloseCode.NOT_AUTHENTICATED,
        )
    await send_message(bob, "others stay", "b-1")
    assert (await next_frame(bob, "message"))["body"] == "others stay"
    # And the account cannot open a new one.
    socket, _ = await open_socket(cookie=laptop_cookie)
    error = await socket.receive_json_from()
    assert error["code"] == "not_authenticated"
