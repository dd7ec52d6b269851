import asyncio
import json
import logging
import weakref

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError

from chat import services
from chat.models import Message
from chat.outages import RETRY_INTERVAL
from chat.protocol import CloseCode

from .roster import Roster

pytestmark = pytest.mark.django_db(transaction=True)


# Each test socket's view of its room's presence, from the frames it received.
rosters: "weakref.WeakKeyDictionary[object, Roster]" = weakref.WeakKeyDictionary()


async def next_frame(socket, *types, timeout=3.0):
    """The next frame of one of `types`; presence frames skipped on the way
    still update the socket's roster, typing notices are skipped."""
    while True:
        frame = await socket.receive_json_from(timeout=timeout)
        if frame["type"] in types:
            return frame
        roster = rosters.setdefault(socket, Roster())
        assert roster.apply(frame) or frame["type"] == "typing", frame


async def joined(open_socket, user, slug="general"):
    socket, connected = await open_socket(user, slug=slug)
    assert connected
    hello = await next_frame(socket, "hello")
    return socket, hello


async def send_message(socket, body, client_id):
    await socket.send_json_to({"type": "message", "body": body, "client_id": client_id})


async def stored_bodies():
    return await database_sync_to_async(
        lambda: list(Message.objects.values_list("body", flat=True))
    )()


async def post(room, user, body, client_id):
    message, _ = await database_sync_to_async(services.message_create)(
        room=room, author=user, body=body, client_id=client_id
    )
    return message


async def refused(socket) -> tuple[str, int]:
    """The error code and the close code a refused socket got."""
    error = await socket.receive_json_from()
    assert error["type"] == "error" and error["detail"]
    close = await socket.receive_output()
    assert close["type"] == "websocket.close"
    return error["code"], close["code"]


def database_down(*args, **kwargs):
    raise OperationalError("connection refused")


async def test_hello_describes_the_room(open_socket, user, room):
    _socket, hello = await joined(open_socket, user)
    assert hello == {
        "type": "hello",
        "room": {"slug": "general", "title": "General"},
        "user": "alice",
        "last_id": None,
        "max_body_length": 2000,
    }


async def test_message_reaches_everyone_in_the_room_sender_included(
    open_socket, user, other_user, room
):
    alice, _ = await joined(open_socket, user)
    bob, _ = await joined(open_socket, other_user)

    await send_message(alice, "hi <b>bob</b>", "c-1")

    for socket in (alice, bob):
        frame = await next_frame(socket, "message")
        assert frame["body"] == "hi <b>bob</b>"
        assert frame["author"] == "alice"
        assert frame["room"] == "general"
        assert frame["client_id"] == "c-1"
        assert frame["prev_id"] is None
        assert isinstance(frame["id"], int)
        assert frame["created_at"]
    assert await stored_bodies() == ["hi <b>bob</b>"]


async def test_message_does_not_reach_other_rooms(open_socket, user, other_user, room):
    await database_sync_to_async(services.room_create)(
        slug="other", title="Other", created_by=user
    )
    alice, _ = await joined(open_socket, user)
    bob, _ = await joined(open_socket, other_user, slug="other")

    await send_message(alice, "only general", "c-1")
    await next_frame(alice, "message")
    await send_message(bob, "only other", "c-2")

    frame = await next_frame(bob, "message")
    assert frame["body"] == "only other"
    assert frame["room"] == "other"


async def test_retry_with_same_client_id_stores_and_broadcasts_once(
    open_socket, user, other_user, room
):
    alice, _ = await joined(open_socket, user)
    bob, _ = await joined(open_socket, other_user)

    await send_message(alice, "once", "retry-1")
    first = await next_frame(alice, "message")
    await send_message(alice, "once", "retry-1")
    again = await next_frame(alice, "message")

    assert again["id"] == first["id"]
    assert again["client_id"] == "retry-1"
    assert (await next_frame(bob, "message"))["id"] == first["id"]
    await send_message(alice, "next", "retry-2")
    # Bob's next message is the new one: the retry was not broadcast.
    assert (await next_frame(bob, "message"))["body"] == "next"
    assert await stored_bodies() == ["once", "next"]


async def test_live_frames_chain_prev_id(open_socket, user, room):
    alice, _ = await joined(open_socket, user)
    ids = []
    for n in range(3):
        await send_message(alice, f"m{n}", f"c{n}")
        frame = await next_frame(alice, "message")
        assert frame["prev_id"] == (ids[-1] if ids else None)
        ids.append(frame["id"])
    assert ids == sorted(ids)


async def test_resume_replays_exactly_what_was_missed(open_socket, user, room):
    before = [await post(room, user, f"old {n}", f"old-{n}") for n in range(2)]
    alice, hello = await joined(open_socket, user)
    assert hello["last_id"] == before[-1].id
    # Sent while alice was "away": she resumes after the last id she saw.
    missed = [await post(room, user, f"missed {n}", f"missed-{n}") for n in range(3)]
    await asyncio.sleep(0.1)
    while not alice.output_queue.empty():  # drop the live copies
        await alice.receive_output()

    await alice.send_json_to({"type": "resume", "after": before[-1].id})

    replayed = [await next_frame(alice, "message") for _ in missed]
    assert [f["id"] for f in replayed] == [m.id for m in missed]
    assert [f["body"] for f in replayed] == ["missed 0", "missed 1", "missed 2"]
    done = await next_frame(alice, "resume_done")
    assert done == {
        "type": "resume_done",
        "after": before[-1].id,
        "last_id": missed[-1].id,
        "count": 3,
        "has_more": False,
    }


async def test_resume_from_zero_and_with_nothing_missed(open_socket, user, room):
    messages = [await post(room, user, f"m{n}", f"c{n}") for n in range(2)]
    alice, _ = await joined(open_socket, user)

    await alice.send_json_to({"type": "resume", "after": 0})
    assert [(await next_frame(alice, "message"))["id"] for _ in messages] == [
        m.id for m in messages
    ]
    assert (await next_frame(alice, "resume_done"))["count"] == 2

    await alice.send_json_to({"type": "resume", "after": messages[-1].id})
    done = await next_frame(alice, "resume_done")
    assert done["count"] == 0
    assert done["last_id"] == messages[-1].id


async def test_resume_in_bounded_batches(open_socket, user, room, settings):
    settings.CHAT_RESUME_MAX_MESSAGES = 2
    messages = [await post(room, user, f"m{n}", f"c{n}") for n in range(3)]
    alice, _ = await joined(open_socket, user)

    await alice.send_json_to({"type": "resume", "after": 0})
    first = [(await next_frame(alice, "message"))["id"] for _ in range(2)]
    done = await next_frame(alice, "resume_done")
    assert done["has_more"] is True
    await alice.send_json_to({"type": "resume", "after": done["last_id"]})
    rest = (await next_frame(alice, "message"))["id"]
    assert (await next_frame(alice, "resume_done"))["has_more"] is False
    assert [*first, rest] == [m.id for m in messages]


async def test_message_posted_outside_the_socket_reaches_it(
    open_socket, user, other_user, room
):
    """A message stored by the HTTP side travels the same road to the socket."""
    alice, _ = await joined(open_socket, user)
    message = await post(room, other_user, "from http", "http-1")
    frame = await next_frame(alice, "message")
    assert frame["id"] == message.id
    assert frame["author"] == "bob"


async def test_typing_notices_reach_the_room_throttled(
    open_socket, user, other_user, room, settings
):
    settings.CHAT_TYPING_INTERVAL = 60
    alice, _ = await joined(open_socket, user)
    bob, _ = await joined(open_socket, other_user)

    await bob.send_json_to({"type": "typing"})
    await bob.send_json_to({"type": "typing"})  # within the interval: dropped
    await send_message(bob, "done typing", "c-1")

    frames = []
    while (frame := await alice.receive_json_from(timeout=3))["type"] != "message":
        frames.append(frame)
    assert [f for f in frames if f["type"] == "typing"] == [
        {"type": "typing", "user": "bob"}
    ]


async def test_presence_lists_who_is_in_the_room(open_socket, user, other_user, room):
    alice, _ = await joined(open_socket, user)
    assert await presence(alice) == ["alice"]
    bob, _ = await joined(open_socket, other_user)
    assert await presence(alice, until=["alice", "bob"]) == ["alice", "bob"]

    await bob.disconnect()
    assert await presence(alice, until=["alice"]) == ["alice"]


async def test_a_user_with_two_sockets_is_listed_once(open_socket, user, room):
    first, _ = await joined(open_socket, user)
    await joined(open_socket, user)
    assert await presence(first, until=["alice"]) == ["alice"]


async def presence(socket, until=None, timeout=3.0):
    """Who the socket's client sees in the room: once `until` is what it sees,
    or after its next presence frame."""
    roster = rosters.setdefault(socket, Roster())
    async with asyncio.timeout(timeout):
        while until is None or roster.users != until:
            frame = await socket.receive_json_from(timeout=timeout)
            if roster.apply(frame) and until is None:
                break
    return roster.users


async def test_changes_say_who_came_and_left_and_pages_give_the_rest(
    open_socket, user, other_user, room, settings
):
    settings.CHAT_PRESENCE_PAGE_SIZE = 1
    alice, _ = await joined(open_socket, user)
    first_page = await next_frame(alice, "presence")
    assert (first_page["users"], first_page["next"]) == (["alice"], None)
    # Her own coming, announced before bob comes: two changes in one moment
    # would be more than a page of 1, and the room would get the roster anew.
    change = await next_frame(alice, "presence_change")
    assert [(c["user"], c["present"]) for c in change["changes"]] == [("alice", True)]
    bob, _ = await joined(open_socket, other_user)
    page = await next_frame(bob, "presence")
    # Bob sees one name and is told there is more after it.
    assert (page["users"], page["next"], page["count"]) == (["alice"], "alice", 2)
    await bob.send_json_to({"type": "presence", "after": "alice"})
    page = await next_frame(bob, "presence")
    assert (page["users"], page["after"], page["next"]) == (["bob"], "alice", None)
    # Alice is told that bob came: a change, not the roster.
    change = await next_frame(alice, "presence_change")
    assert change["count"] == 2
    (bob_came,) = change["changes"]
    assert bob_came["user"] == "bob"
    assert bob_came["present"] and bob_came["version"] > first_page["version"]
    await bob.disconnect()
    change = await next_frame(alice, "presence_change")
    assert [(c["user"], c["present"]) for c in change["changes"]] == [("bob", False)]
    assert change["count"] == 1


async def test_a_roster_page_after_a_bad_name_is_an_error(open_socket, user, room):
    alice, _ = await joined(open_socket, user)
    for after in (7, "", "x" * 151):
        await alice.send_json_to({"type": "presence", "after": after})
        assert (await next_frame(alice, "error"))["code"] == "invalid_after"


# --- Refused sockets --------------------------------------------------------


async def test_anonymous_socket_gets_an_error_and_close_4401(open_socket, room):
    socket, connected = await open_socket(None)
    assert connected
    assert await socket.receive_json_from() == {
        "type": "error",
        "code": "not_authenticated",
        "detail": "Log in to chat.",
    }
    assert await socket.receive_output() == {
        "type": "websocket.close",
        "code": CloseCode.NOT_AUTHENTICATED,
    }


async def test_unknown_room_gets_an_error_and_close_4404(open_socket, user, room):
    socket, connected = await open_socket(user, slug="no-such-room")
    assert connected
    assert await refused(socket) == ("room_not_found", CloseCode.ROOM_NOT_FOUND)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", None])
async def test_foreign_or_missing_origin_is_refused(open_socket, user, room, origin):
    _socket, connected = await open_socket(user, origin=origin)
    assert not connected


# --- Bad frames -------------------------------------------------------------

BAD_FRAMES = [
    ("not json", "invalid_json"),
    ("", "invalid_json"),
    ("[1, 2]", "invalid_frame"),
    ('"message"', "invalid_frame"),
    ('{"body": "no type"}', "invalid_frame"),
    ('{"type": 5}', "invalid_frame"),
    ('{"type": "shout"}', "unknown_type"),
    ('{"type": "message", "client_id": "c"}', "empty_body"),
    ('{"type": "message", "body": "", "client_id": "c"}', "empty_body"),
    ('{"type": "message", "body": "  \\n ", "client_id": "c"}', "empty_body"),
    ('{"type": "message", "body": 12, "client_id": "c"}', "invalid_body"),
    ('{"type": "message", "body": "a\\u0000b", "client_id": "c"}', "invalid_body"),
    ('{"type": "message", "body": "\\ud800", "client_id": "c"}', "invalid_body"),
    (
        json.dumps({"type": "message", "body": "x" * 2001, "client_id": "c"}),
        "body_too_long",
    ),
    ('{"type": "message", "body": "hi"}', "invalid_client_id"),
    ('{"type": "message", "body": "hi", "client_id": 7}', "invalid_client_id"),
    (
        json.dumps({"type": "message", "body": "hi", "client_id": "c" * 65}),
        "invalid_client_id",
    ),
    ('{"type": "message", "body": "hi", "client_id": "\\udc00"}', "invalid_client_id"),
    ('{"type": "resume"}', "invalid_after"),
    ('{"type": "resume", "after": -1}', "invalid_after"),
    ('{"type": "resume", "after": "5"}', "invalid_after"),
    ('{"type": "resume", "after": true}', "invalid_after"),
    ('{"type": "resume", "after": 1.5}', "invalid_after"),
    ("[" * 5000 + "]" * 5000, "invalid_json"),
    ('{"type": "resume", "after": ' + "9" * 5000 + "}", "invalid_json"),
    ("x" * 20_000, "frame_too_large"),
]


@pytest.mark.parametrize(("text", "code"), BAD_FRAMES, ids=[c for _, c in BAD_FRAMES])
async def test_bad_frame_gets_an_error_and_the_socket_stays_usable(
    open_socket, user, room, text, code
):
    alice, _ = await joined(open_socket, user)

    # send_input, not send_to: the communicator refuses to send an empty frame.
    await alice.send_input({"type": "websocket.receive", "text": text})
    error = await next_frame(alice, "error")
    assert error["code"] == code
    assert error["detail"]

    await send_message(alice, "still here", "after-error")
    assert (await next_frame(alice, "message"))["body"] == "still here"
    assert await stored_bodies() == ["still here"]


async def test_error_answering_a_message_names_its_client_id(open_socket, user, room):
    alice, _ = await joined(open_socket, user)
    await send_message(alice, "", "empty-1")
    error = await next_frame(alice, "error")
    assert error["client_id"] == "empty-1"


async def test_binary_frame_is_refused(open_socket, user, room):
    alice, _ = await joined(open_socket, user)
    await alice.send_to(bytes_data=b"\x00\x01binary")
    assert (await next_frame(alice, "error"))["code"] == "binary_not_supported"


async def test_huge_resume_cursor_replays_nothing(open_socket, user, room):
    await post(room, user, "m", "c")
    alice, _ = await joined(open_socket, user)
    await alice.send_json_to({"type": "resume", "after": 10**30})
    assert (await next_frame(alice, "resume_done"))["count"] == 0


# --- Load -------------------------------------------------------------------


async def test_two_hundred_clients_joining_at_once_all_get_in(
    open_socket, user, other_user, room, caplog, settings
):
    """No handshake fails and nothing is lost for want of a Redis connection."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 200  # all of them alice's
    sockets = await asyncio.gather(*(open_socket(user) for _ in range(200)))
    assert all(connected for _socket, connected in sockets)
    for socket, _ in sockets:
        assert (await next_frame(socket, "hello", timeout=10))["type"] == "hello"

    sender, _ = await joined(open_socket, other_user)
    await send_message(sender, "to everyone", "storm-1")
    for socket, _ in sockets:
        frame = await next_frame(socket, "message", timeout=10)
        assert frame["body"] == "to everyone"
    assert await presence(sender, until=["alice", "bob"]) == ["alice", "bob"]
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []


@pytest.mark.redis
async def test_quiet_room_keeps_working_with_redis(open_socket, user, room):
    """A socket idle longer than redis-py's 5 s socket timeout still gets messages."""
    alice, _ = await joined(open_socket, user)
    await asyncio.sleep(12)
    await post(room, user, "after the quiet", "quiet-1")
    assert (await next_frame(alice, "message"))["body"] == "after the quiet"


# --- Outages ----------------------------------------------------------------


async def test_channel_layer_down_at_connect_closes_4503(
    open_socket, user, room, monkeypatch
):
    async def refuse(**kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("chat.events.socket_join", refuse)
    socket, connected = await open_socket(user)
    assert connected
    assert await refused(socket) == ("unavailable", CloseCode.UNAVAILABLE)
    assert CloseCode.UNAVAILABLE == 4503


async def test_database_down_while_sending_is_an_error_frame(
    open_socket, user, room, monkeypatch
):
    alice, _ = await joined(open_socket, user)

    monkeypatch.setattr("chat.services.message_create_many", database_down)
    await send_message(alice, "lost?", "down-1")
    error = await next_frame(alice, "error")
    assert error["code"] == "unavailable"
    assert error["client_id"] == "down-1"

    monkeypatch.undo()
    await asyncio.sleep(RETRY_INTERVAL)  # the client backs off before retrying
    await send_message(alice, "lost?", "down-1")
    assert (await next_frame(alice, "message"))["client_id"] == "down-1"
    assert await stored_bodies() == ["lost?"]


async def test_database_down_at_handshake_closes_4503(
    open_socket, session_cookie, user, room, monkeypatch
):
    from django.contrib.sessions.backends.db import SessionStore

    await database_sync_to_async(session_cookie)(user)  # log in while the db is up

    monkeypatch.setattr(SessionStore, "_get_session_from_db", database_down)
    socket, connected = await open_socket(user)
    assert connected
    assert await refused(socket) == ("unavailable", CloseCode.UNAVAILABLE)


async def test_database_down_during_resume_is_resume_failed(
    open_socket, user, room, monkeypatch
):
    alice, _ = await joined(open_socket, user)

    monkeypatch.setattr("chat.selectors.message_list", database_down)
    await alice.send_json_to({"type": "resume", "after": 0})
    assert (await next_frame(alice, "error"))["code"] == "resume_failed"
    monkeypatch.undo()
    await asyncio.sleep(RETRY_INTERVAL)  # the client backs off before asking again
    await alice.send_json_to({"type": "resume", "after": 0})
    assert (await next_frame(alice, "resume_done"))["count"] == 0


async def test_room_deleted_while_connected_closes_4404(open_socket, user, room):
    alice, _ = await joined(open_socket, user)
    await database_sync_to_async(room.delete)()

    await send_message(alice, "anyone?", "gone-1")
    error = await next_frame(alice, "error")
    assert error["code"] == "room_not_found"
    assert error["client_id"] == "gone-1"
    while (output := await alice.receive_output())["type"] != "websocket.close":
        pass
    assert output["code"] == CloseCode.ROOM_NOT_FOUND
