"""
HTTP through nginx: pages, static files, TLS and redirects, refused hosts,
forwarding headers nginx sets itself, accounts, and load spread over every
gunicorn replica.
"""

import os
import re
import socket
import ssl
import uuid

import pytest

from .actions import PASSWORD, create_room, log_counts, sign_up
from .clients import Session


def test_lobby_page_and_static_file(stack, browser):
    lobby = browser.get("/")
    assert lobby.status == 200
    assert 'id="room-list"' in lobby.text
    for header, value in {
        "Strict-Transport-Security": "max-age=31536000",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }.items():
        assert value in lobby.headers.get(header, ""), header

    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', lobby.text).group(1)
    css = browser.get(stylesheet)
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]
    # Served by nginx from disk: no gunicorn replica saw it. (A request made
    # after it is logged first, so the logs are not merely lagging.)
    marker = f"/accounts/login/?after-static={uuid.uuid4().hex}"
    browser.get(marker)
    assert sum(log_counts(stack, "web", f'"GET {marker} ', total=1).values()) == 1
    assert sum(log_counts(stack, "web", f'"GET {stylesheet} ', total=0).values()) == 0


def test_session_and_csrf_cookies_are_secure(stack):
    session = sign_up(stack, f"cookie-{uuid.uuid4().hex[:6]}")
    cookies = {cookie.name: cookie for cookie in session.cookies}
    for name in ("sessionid", "csrftoken"):
        assert cookies[name].secure, f"{name} is sent over plain HTTP too"
        assert cookies[name].get_nonstandard_attr("SameSite") == "Lax", name
    # Scripts never read the session cookie; the page reads the CSRF one.
    assert cookies["sessionid"].has_nonstandard_attr("HttpOnly")


def test_a_body_over_nginx_limit_is_refused_and_not_stored(stack):
    session = sign_up(stack, f"big-{uuid.uuid4().hex[:6]}")
    slug = create_room(session)
    api = f"/api/rooms/{slug}/messages/"
    response = session.request("POST", api, json_body={"body": "x" * 100_000})
    assert response.status == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert session.get(api).json()["messages"] == []


def test_probes_answer_the_servers_not_the_world(stack, browser):
    assert browser.get("/healthz").status == 200
    assert browser.get("/readyz").status == 404


def test_plain_http_redirects_to_https(stack):
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=5) as conn:
        conn.sendall(
            b"GET /rooms/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        reply = conn.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 301")
    assert f"Location: https://localhost:{stack.https_port}/rooms/" in reply


def test_unknown_host_is_refused(stack):
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        assert conn.recv(4096) == b"", "nginx answered a Host it does not serve"
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    context.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=5) as conn,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(conn, server_hostname="evil.example")


def test_forwarded_headers_from_the_client_are_not_trusted(stack, browser):
    # A client claiming to be HTTPS over plain HTTP, or to come from elsewhere,
    # changes nothing: nginx sets X-Forwarded-* from the connection.
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=5) as conn:
        conn.sendall(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https\r\n"
            b"Connection: close\r\n\r\n"
        )
        assert conn.recv(4096).startswith(b"HTTP/1.1 301")
    spoofed = f"198.51.100.{os.getpid() % 250}"
    marker = f"/accounts/login/?spoof={uuid.uuid4().hex}"
    for header in ("X-Forwarded-Ssl", "X-Forwarded-Protocol", "Forwarded"):
        # Dropped by nginx; gunicorn would refuse contradictory scheme headers.
        assert browser.get(marker, headers={header: "off"}).status == 200, header
    browser.get(marker, headers={"X-Forwarded-For": spoofed})
    assert sum(log_counts(stack, "web", f'"GET {marker} ', total=4).values()) == 4
    logs = "".join(stack.container_log(c) for c in stack.containers("web"))
    assert spoofed not in logs


def test_sign_up_then_log_in(stack):
    username = f"newcomer-{uuid.uuid4().hex[:6]}"
    sign_up(stack, username)
    returning = Session(stack.origin, str(stack.ca_file))
    page = returning.post_form(
        "/accounts/login/", {"username": username, "password": PASSWORD}
    )
    assert page.status == 200
    assert returning.cookie("sessionid")
    assert username in page.text
    cookies = {cookie.name: cookie for cookie in returning.cookies}
    assert cookies["sessionid"].secure and cookies["csrftoken"].secure
    assert cookies["sessionid"].has_nonstandard_attr("HttpOnly")


def test_http_load_reaches_every_gunicorn_replica(stack, browser):
    marker = f"/accounts/login/?spread={uuid.uuid4().hex}"
    for _ in range(20):
        assert browser.get(marker).status == 200
    served = log_counts(stack, "web", f'"GET {marker} ', total=20)
    assert sum(served.values()) == 20
    assert len(served) == 2 and all(served.values()), served
