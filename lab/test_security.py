"""
Security promises checked against the real processes (gunicorn and two Daphne
processes sharing PostgreSQL and Redis), each with the figure it measured:
origin-checked handshakes, no anonymous writes, a per-user rate limit that holds
across server processes, size limits, and sockets closed at logout.
"""

import asyncio
import json
import statistics
import time

import pytest
from django.conf import settings
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from chat.models import Message
from tests.live import open_socket, receive
from tests.webclient import Browser, sign_up

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# CHAT_MESSAGE_RATE_LIMIT as the servers run it: the default.
RATE_LIMIT = 20


def stored(slug: str) -> int:
    return Message.objects.filter(room__slug=slug).count()


def handshake_status(daphne, origin: str | None) -> int:
    """The HTTP status of a handshake with this Origin (None: no header)."""
    try:
        with ws_connect(
            f"ws://127.0.0.1:{daphne.port}/ws/chat/lobby/",
            origin=origin,
            open_timeout=5,
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_handshakes_from_foreign_or_no_origin_are_refused_every_time(servers, figure):
    daphne = servers["daphne"]
    foreign = [
        "http://evil.example",
        "http://127.0.0.1.evil.example",
        "null",
        f"https://attacker.test:{daphne.port}",
    ]
    statuses = [handshake_status(daphne, foreign[n % 4]) for n in range(20)]
    statuses += [handshake_status(daphne, None) for _ in range(20)]
    refused = statuses.count(403)
    figure("foreign Origin or none: handshakes refused with 403", f"{refused} of 40")
    assert refused == 40

    alice = sign_up(servers["gunicorn"].url, "origin-alice")
    alice.submit_form("/", {"slug": "origins", "title": "Origins"})
    with open_socket(daphne, alice, "origins") as socket:  # the allowed Origin
        assert receive(socket, "hello")["room"]["slug"] == "origins"


def test_anonymous_clients_store_nothing(servers, figure):
    gunicorn, daphne = servers["gunicorn"], servers["daphne"]
    owner = sign_up(gunicorn.url, "anon-owner")
    owner.submit_form("/", {"slug": "anonymous", "title": "Anonymous"})
    api = "/api/rooms/anonymous/messages/"

    stranger = Browser(gunicorn.url)
    stranger.request("/accounts/login/")  # a page with a form sets the CSRF cookie
    with_token = stranger.request(api, json_body={"body": "hi", "client_id": "x"})
    stranger.cookies.clear()
    without_token = stranger.request(
        api, data={"body": "hi", "client_id": "y"}, method="POST"
    )
    with ws_connect(
        f"ws://127.0.0.1:{daphne.port}/ws/chat/anonymous/",
        origin=f"http://127.0.0.1:{daphne.port}",
        open_timeout=5,
    ) as socket:
        error = json.loads(socket.recv(timeout=5))
        with pytest.raises(ConnectionClosed) as closed:
            socket.send(json.dumps({"type": "message", "body": "hi", "client_id": "z"}))
            while True:
                socket.recv(timeout=5)
    outcome = (with_token[0], without_token[0], error["code"], closed.value.rcvd.code)
    figure("anonymous POST / POST without CSRF / socket", outcome)
    assert outcome == (401, 403, "not_authenticated", 4401)
    assert stored("anonymous") == 0


async def _flood_and_chat(daphne_ports, flood_cookie, bob_cookie, slug):
    """One user floods from sockets on both Daphne processes (1,000 messages in
    under 10 s) while bob, on the first one, chats at one message a second (well
    inside his own limit).
    Returns every frame the flooder got and bob's round trips in seconds."""
    name = settings.SESSION_COOKIE_NAME

    def connect(port, cookie):
        return async_connect(
            f"ws://127.0.0.1:{port}/ws/chat/{slug}/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"{name}={cookie}"},
            max_queue=None,
        )

    flood_frames: list[dict] = []
    rounds = {"before": [], "during": []}

    async with (
        connect(daphne_ports[0], flood_cookie) as flood_a,
        connect(daphne_ports[1], flood_cookie) as flood_b,
        connect(daphne_ports[0], bob_cookie) as bob,
    ):
        flood_sockets = [flood_a, flood_b]

        async def collect(socket):
            async for raw in socket:
                frame = json.loads(raw)
                if frame.get("client_id", "").startswith("f-"):
                    flood_frames.append(frame)

        readers = [asyncio.create_task(collect(s)) for s in flood_sockets]
        sent_at: dict[str, float] = {}
        echoed = asyncio.Queue()

        async def bob_reader():
            async for raw in bob:
                frame = json.loads(raw)
                if frame["type"] == "message" and frame["client_id"] in sent_at:
                    await echoed.put(time.monotonic() - sent_at[frame["client_id"]])

        bob_task = asyncio.create_task(bob_reader())

        async def bob_chats(phase: str, count: int, interval: float):
            for n in range(count):
                client_id = f"b-{phase}-{n}"
                sent_at[client_id] = time.monotonic()
                await bob.send(
                    json.dumps(
                        {"type": "message", "body": "hi", "client_id": client_id}
                    )
                )
                rounds[phase].append(await asyncio.wait_for(echoed.get(), 10))
                await asyncio.sleep(interval)

        await bob_chats("before", 5, 0.2)

        async def flood():
            start = time.monotonic()
            for n in range(1000):
                frame = {"type": "message", "body": f"flood {n}", "client_id": f"f-{n}"}
                await flood_sockets[n % 2].send(json.dumps(frame))
                # 1,000 spread over 9.5 s, all inside one 10 s window.
                await asyncio.sleep(max(0, start + n * 0.0095 - time.monotonic()))

        await asyncio.gather(flood(), bob_chats("during", 10, 0.9))
        # Every flood message is answered: its broadcast or an error frame.
        deadline = time.monotonic() + 20
        while len(flood_frames) < 1000 + RATE_LIMIT and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for task in [*readers, bob_task]:
            task.cancel()
        await asyncio.gather(*readers, bob_task, return_exceptions=True)
    return flood_frames, rounds


def test_a_flood_from_one_user_stores_at_most_the_limit_across_processes(
    servers, figure
):
    gunicorn = servers["gunicorn"]
    flooder = sign_up(gunicorn.url, "flooder")
    flooder.submit_form("/", {"slug": "flooded", "title": "Flooded"})
    bob = sign_up(gunicorn.url, "steady-bob")
    cookie = settings.SESSION_COOKIE_NAME
    ports = [servers["daphne"].port, servers["daphne2"].port]

    frames, rounds = asyncio.run(
        _flood_and_chat(ports, flooder.cookie(cookie), bob.cookie(cookie), "flooded")
    )

    flood_stored = Message.objects.filter(
        room__slug="flooded", author__username="flooder"
    ).count()
    errors = [f for f in frames if f["type"] == "error"]
    # Each socket of the flooder sees every stored flood message once, and the
    # error frames of its own sends.
    broadcasts = {f["client_id"] for f in frames if f["type"] == "message"}
    answered = broadcasts | {f["client_id"] for f in errors}
    figure("flood of 1,000 in 9.5 s over 2 Daphne processes: stored", flood_stored)
    figure("flood: rate_limited error frames", len(errors))
    for phase, seconds in rounds.items():
        p50 = statistics.median(seconds) * 1000
        top = max(seconds) * 1000
        figure(
            f"other client's round trip {phase} the flood: p50 / max",
            f"{p50:.1f} / {top:.1f} ms",
        )
    assert 0 < flood_stored <= RATE_LIMIT
    assert {f["code"] for f in errors} == {"rate_limited"}
    assert answered == {f"f-{n}" for n in range(1000)}, "a flood message got no answer"
    assert len(broadcasts) == flood_stored
    assert len(rounds["during"]) == 10  # bob's messages all went through


def test_oversized_frames_and_bodies_are_refused_before_storage(servers, figure):
    gunicorn, daphne = servers["gunicorn"], servers["daphne"]
    alice = sign_up(gunicorn.url, "big-alice")
    alice.submit_form("/", {"slug": "sizes", "title": "Sizes"})

    with open_socket(daphne, alice, "sizes") as socket:
        receive(socket, "hello")
        # Over the consumer's CHAT_MAX_FRAME_LENGTH, under Daphne's limit.
        body = "x" * (settings.CHAT_MAX_FRAME_LENGTH + 10)
        socket.send(json.dumps({"type": "message", "body": body, "client_id": "b"}))
        assert receive(socket, "error")["code"] == "frame_too_large"
        socket.send(json.dumps({"type": "message", "body": "ok", "client_id": "s"}))
        assert receive(socket, "message")["body"] == "ok"

    with open_socket(daphne, alice, "sizes") as socket:
        receive(socket, "hello")
        # Over Daphne's --websocket-max-message-size (64 KiB).
        socket.send(
            json.dumps({"type": "message", "body": "y" * 70_000, "client_id": "h"})
        )
        frames = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(json.loads(socket.recv(timeout=10))["type"])
    close_code = closed.value.rcvd.code if closed.value.rcvd else 1006
    figure(
        "70,000-byte frame: close code, frames the application sent",
        (close_code, frames),
    )
    # The application never saw it: it would have answered frame_too_large.
    assert "error" not in frames
    assert close_code in (1009, 1006)

    status, body = alice.request(
        "/api/rooms/sizes/messages/",
        json_body={"body": "z" * 3_000_000, "client_id": "too-big"},
    )
    figure("3 MB HTTP body to gunicorn: status", status)
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    assert list(
        Message.objects.filter(room__slug="sizes").values_list("body", flat=True)
    ) == ["ok"]
    assert "Traceback" not in daphne.logs() + gunicorn.logs()


def test_logging_out_on_gunicorn_closes_the_socket_on_daphne(servers, figure):
    gunicorn = servers["gunicorn"]
    alice = sign_up(gunicorn.url, "leaving-alice")
    alice.submit_form("/", {"slug": "logout", "title": "Logout"})
    with open_socket(servers["daphne2"], alice, "logout") as socket:
        receive(socket, "hello")
        logged_out_at = time.monotonic()
        status, _ = alice.request(
            "/accounts/logout/",
            {"csrfmiddlewaretoken": alice.cookie("csrftoken")},
        )
        assert status == 200  # followed the redirect to the lobby
        error = receive(socket, "error")
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        took = time.monotonic() - logged_out_at
    figure(
        "logout to socket closed",
        f"{took * 1000:.0f} ms (close {closed.value.rcvd.code})",
    )
    assert (error["code"], closed.value.rcvd.code) == ("not_authenticated", 4401)
