"""
The two entry points as real processes: gunicorn serving chatroom.wsgi and two
Daphne processes serving chatroom.asgi on loopback, sharing the test database
(PostgreSQL) and one Redis channel layer. A message posted over HTTP to gunicorn
reaches a WebSocket client of Daphne; clients of different Daphne processes
chat and see each other in the room.
"""

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect as ws_connect

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORD = "a-long-test-password-42"
STARTUP_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, argv: list[str], port: int, env, log_dir: Path):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"{self.name} did not become ready:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatroom.settings",
        "DJANGO_DEBUG": "true",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        # Keep this run's channels apart from anything else on the Redis.
        "REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
    }
    logs = tmp_path_factory.mktemp("server-logs")
    gunicorn_port = free_port()
    started = [
        Server(
            "gunicorn",
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{gunicorn_port}",
             "--workers", "2", "--access-logfile", "-", "chatroom.wsgi"],
            gunicorn_port, env, logs,
        ),
    ]  # fmt: skip
    for name in ("daphne", "daphne2"):
        port = free_port()
        argv = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
        started.append(
            Server(name, [*argv, "chatroom.asgi:application"], port, env, logs)
        )
    try:
        for server in started:
            server.wait_ready()
        yield {server.name: server for server in started}
    finally:
        for server in started:
            server.stop()


class Browser:
    """A cookie-keeping HTTP client that does what the page's forms do."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.cookies if c.name == name)

    def request(self, path, data=None, *, json_body=None, method=None):
        headers = {}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers = {
                "Content-Type": "application/json",
                "X-CSRFToken": self.cookie("csrftoken"),
            }
        elif data is not None:
            data = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def submit_form(self, path: str, fields: dict) -> tuple[int, str]:
        _status, page = self.request(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        return self.request(path, {"csrfmiddlewaretoken": token, **fields})


def sign_up(base_url: str, username: str) -> Browser:
    browser = Browser(base_url)
    status, _ = browser.submit_form(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert status == 200  # followed the redirect to the lobby
    assert browser.cookie(settings.SESSION_COOKIE_NAME)
    return browser


def open_socket(server, browser: Browser, slug: str):
    session = browser.cookie(settings.SESSION_COOKIE_NAME)
    return ws_connect(
        f"ws://127.0.0.1:{server.port}/ws/chat/{slug}/",
        origin=f"http://127.0.0.1:{server.port}",
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"},
        open_timeout=10,
    )


def receive(socket, frame_type: str) -> dict:
    while True:
        frame = json.loads(socket.recv(timeout=10))
        if frame["type"] == frame_type:
            return frame


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
        while receive(dora_socket, "presence")["users"] != ["dora", "emil"]:
            pass

        emil_socket.send(
            json.dumps({"type": "message", "body": "from daphne 2", "client_id": "e"})
        )
        assert receive(dora_socket, "message")["body"] == "from daphne 2"
        dora_socket.send(json.dumps({"type": "typing"}))
        assert receive(emil_socket, "typing") == {"type": "typing", "user": "dora"}

    with open_socket(servers["daphne"], dora, "across") as dora_socket:
        while receive(dora_socket, "presence")["users"] != ["dora"]:
            pass


def test_every_server_reports_ready(servers):
    for server in servers.values():
        with urllib.request.urlopen(f"{server.url}/readyz", timeout=5) as response:
            assert json.loads(response.read())["checks"] == {
                "database": "ok",
                "channel_layer": "ok",
            }
