"""
What one socket and one user can make the server do is bounded: `resume`
frames per socket (CHAT_RESUME_RATE_LIMIT), roster pages per socket
(CHAT_PRESENCE_RATE_LIMIT, each at most CHAT_PRESENCE_PAGE_SIZE names), sockets per user
(CHAT_MAX_SOCKETS_PER_USER, over every server process) and typing notices per
user and room (CHAT_TYPING_INTERVAL, whichever socket they come from). Each
refusal is a clear error frame, or close code, never silence where the client
must act. With REDIS_URL the counts live in Redis; without, in the process.
"""

import pytest

from chat.protocol import CloseCode

from .test_consumers import joined, next_frame, refused, send_message

pytestmark = pytest.mark.django_db(transaction=True)


async def test_resumes_past_the_limit_get_a_retry_after(
    settings, open_socket, user, room
):
    settings.CHAT_RESUME_RATE_LIMIT = "3 per 60 seconds"
    socket, _ = await joined(open_socket, user)
    for _ in range(3):
        await socket.send_json_to({"type": "resume", "after": 0})
        await next_frame(socket, "resume_done")
    await socket.send_json_to({"type": "resume", "after": 0})
    error = await next_frame(socket, "error")
    assert error["code"] == "resume_rate_limited"
    assert 0 < error["retry_after"] <= 60
    # Per socket: the user's next socket resumes, and this one still chats.
    other, _ = await joined(open_socket, user)
    await other.send_json_to({"type": "resume", "after": 0})
    assert (await next_frame(other, "resume_done"))["count"] == 0
    await send_message(socket, "still here", "c-1")
    assert (await next_frame(socket, "message"))["body"] == "still here"


async def test_roster_pages_past_the_limit_get_a_retry_after(
    settings, open_socket, user, room
):
    settings.CHAT_PRESENCE_RATE_LIMIT = "2 per 60 seconds"
    socket, _ = await joined(open_socket, user)
    await next_frame(socket, "presence")  # the first page, sent unasked
    for _ in range(2):
        await socket.send_json_to({"type": "presence"})
        assert (await next_frame(socket, "presence"))["users"] == ["alice"]
    await socket.send_json_to({"type": "presence", "after": "a"})
    error = await next_frame(socket, "error")
    assert error["code"] == "presence_rate_limited"
    assert 0 < error["retry_after"] <= 60


async def test_a_socket_past_the_users_limit_is_refused(
    settings, open_socket, user, other_user, room
):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    first, _ = await joined(open_socket, user)
    await joined(open_socket, user)
    third, connected = await open_socket(user)
    assert connected
    assert await refused(third) == ("too_many_sockets", CloseCode.TOO_MANY_SOCKETS)
    # Others are not counted against alice, and a closed socket frees its place.
    await joined(open_socket, other_user)
    await first.disconnect()
    await joined(open_socket, user)


async def test_typing_notices_are_throttled_per_user_over_their_sockets(
    settings, open_socket, user, other_user, room
):
    settings.CHAT_TYPING_INTERVAL = 30
    watcher, _ = await joined(open_socket, other_user)
    tabs = [(await joined(open_socket, user))[0] for _ in range(3)]
    for tab in tabs:
        await tab.send_json_to({"type": "typing"})
    await send_message(tabs[0], "done typing", "t-1")
    frames = []
    while not frames or frames[-1]["type"] != "message":
        frames.append(await watcher.receive_json_from(timeout=3))
    assert [f for f in frames if f["type"] == "typing"] == [
        {"type": "typing", "user": "alice"}
    ]
    # Another user in the room is not held back by alice's notices.
    await watcher.send_json_to({"type": "typing"})
    bobs = {"type": "typing", "user": "bob"}
    while (frame := await next_frame(tabs[1], "typing", "message")) != bobs:
        # What alice's tabs got before: her own notice and message.
        assert frame in ({"type": "typing", "user": "alice"}, frames[-1])
