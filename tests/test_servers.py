"""
The two entry points as real processes: gunicorn serving chatroom.wsgi and two
Daphne processes serving chatroom.asgi on loopback, sharing the test database
(PostgreSQL) and one Redis channel layer. A message posted over HTTP to gunicorn
reaches a WebSocket client of Daphne; clients of different Daphne processes
chat and see each other in the room.
"""

import contextlib
import json
import urllib.request

import pytest
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from .live import RUN, open_socket, receive, seen_present
from .webclient import sign_up

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_http_post_to_gunicorn_reaches_a_websocket_on_daphne(servers):
    gunicorn, daphne = servers["gunicorn"], servers["daphne"]
    alice = sign_up(gunicorn.url, "alice")
    status, _ = alice.submit_form("/", {"slug": "servers", "title": "Servers"})
    assert status == 200
    bob = sign_up(gunicorn.url, "bob")

    with open_socket(daphne, bob, "servers") as bob_socket:
        assert receive(bob_socket, "hello")["room"]["slug"] == "servers"

        status, body = alice.request(
            "/api/rooms/servers/messages/",
            json_body={"body": "hello from gunicorn", "client_id": "g-1"},
        )
        assert status == 201, body

        frame = receive(bob_socket, "message")
        assert frame["body"] == "hello from gunicorn"
        assert frame["author"] == "alice"
        assert frame["client_id"] == "g-1"

        bob_socket.send(
            json.dumps(
                {"type": "message", "body": "hi from daphne", "client_id": "d-1"}
            )
        )
        assert receive(bob_socket, "message")["body"] == "hi from daphne"

    status, body = alice.request("/api/rooms/servers/messages/")
    assert status == 200
    assert [m["body"] for m in json.loads(body)["messages"]] == [
        "hello from gunicorn",
        "hi from daphne",
    ]
    assert "POST /api/rooms/servers/messages/" in gunicorn.logs()


def test_a_client_that_was_away_resumes_without_gaps_or_duplicates(servers):
    gunicorn, daphne = servers["gunicorn"], servers["daphne"]
    alice = sign_up(gunicorn.url, "carol")
    alice.submit_form("/", {"slug": "resume", "title": "Resume"})
    api = "/api/rooms/resume/messages/"

    with open_socket(daphne, alice, "resume") as socket:
        receive(socket, "hello")
        socket.send(json.dumps({"type": "message", "body": "seen", "client_id": "s"}))
        last_seen = receive(socket, "message")["id"]

    missed = []
    for n in range(5):
        status, body = alice.request(
            api, json_body={"body": f"missed {n}", "client_id": f"m{n}"}
        )
        assert status == 201
        missed.append(json.loads(body)["id"])

    with open_socket(daphne, alice, "resume") as socket:
        receive(socket, "hello")
        socket.send(json.dumps({"type": "resume", "after": last_seen}))
        replayed = [receive(socket, "message")["id"] for _ in missed]
        done = receive(socket, "resume_done")

    assert replayed == missed
    assert done["count"] == 5
    assert done["last_id"] == missed[-1]


def test_clients_of_two_daphne_processes_chat_and_see_each_other(servers):
    gunicorn = servers["gunicorn"]
    dora = sign_up(gunicorn.url, "dora")
    dora.submit_form("/", {"slug": "across", "title": "Across"})
    emil = sign_up(gunicorn.url, "emil")

    with (
        open_socket(servers["daphne"], dora, "across") as dora_socket,
        open_socket(servers["daphne2"], emil, "across") as emil_socket,
    ):
        receive(dora_socket, "hello")
        receive(emil_socket, "hello")
        seen_present(dora_socket, ["dora", "emil"])

        emil_socket.send(
            json.dumps({"type": "message", "body": "from daphne 2", "client_id": "e"})
        )
        assert receive(dora_socket, "message")["body"] == "from daphne 2"
        dora_socket.send(json.dumps({"type": "typing"}))
        assert receive(emil_socket, "typing") == {"type": "typing", "user": "dora"}

    with open_socket(servers["daphne"], dora, "across") as dora_socket:
        seen_present(dora_socket, ["dora"])


def test_every_server_reports_ready(servers):
    for server in servers.values():
        with urllib.request.urlopen(f"{server.url}/readyz", timeout=5) as response:
            assert json.loads(response.read())["checks"] == {
                "database": "ok",
                "channel_layer": "ok",
            }


def refused_by_daphne(socket) -> tuple[str, int]:
    """The error frame and the close code a refused socket gets from Daphne."""
    error = json.loads(socket.recv(timeout=10))
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return error["code"], closed.value.rcvd.code


def test_daphne_sends_the_documented_close_codes(servers):
    daphne = servers["daphne"]
    anonymous = ws_connect(
        f"ws://127.0.0.1:{daphne.port}/ws/chat/servers/",
        origin=f"http://127.0.0.1:{daphne.port}",
        open_timeout=10,
    )
    with anonymous:
        assert refused_by_daphne(anonymous) == ("not_authenticated", 4401)

    carol = sign_up(servers["gunicorn"].url, "carol")
    with open_socket(daphne, carol, "no-such-room") as lost:
        assert refused_by_daphne(lost) == ("room_not_found", 4404)
    assert "Exception inside application" not in daphne.logs()


def daphne_connections(name: str) -> list[tuple[int, object]]:
    """(backend pid, connection start) of a Daphne process's database connections."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity"
            " WHERE application_name = %s ORDER BY pid",
            [f"{RUN}-{name}"],
        )
        return cursor.fetchall()


def test_daphne_reuses_a_small_pool_of_database_connections(servers):
    gunicorn, daphne = servers["gunicorn"], servers["daphne2"]
    fay = sign_up(gunicorn.url, "fay")
    fay.submit_form("/", {"slug": "pooled", "title": "Pooled"})
    with contextlib.ExitStack() as stack:
        # Unbounded queues: only the first socket's frames are read.
        sockets = [
            stack.enter_context(open_socket(daphne, fay, "pooled", max_queue=None))
            for _ in range(6)
        ]
        for socket in sockets:
            receive(socket, "hello")
        before = daphne_connections("daphne2")
        # Twenty: the most one user may send at once (CHAT_MESSAGE_RATE_LIMIT).
        for n in range(20):
            frame = {"type": "message", "body": f"m{n}", "client_id": f"p{n}"}
            sockets[n % len(sockets)].send(json.dumps(frame))
        for n in range(20):
            assert receive(sockets[0], "message")["body"] == f"m{n}"
        after = daphne_connections("daphne2")
    # Six sockets and twenty stored messages: the same few pooled connections
    # (deploy/start-ws.sh, DB_POOL_MAX_SIZE=4), none opened per call.
    assert before, "the pool keeps a connection open between calls"
    assert len(after) <= 4
    assert set(before) <= set(after)
