"""
nginx's limits in front of the servers, from deploy/nginx/snippets/ as the
compose stack and the systemd site run them (lab/backing.py's nginx, with a
default server that answers no other host, as in production):

- logins, sign-ups and password resets posted from one address are
  rate-limited (the second layer under django-axes); their pages are not;
- a client that trickles its request headers is cut off after
  client_header_timeout, on the default server too: nginx reads the headers
  before it knows the host, so Daphne never sees a slow handshake.
"""

import socket
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from .cluster import django_database_url, running_cluster

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

POSTS = 40
BURST = 20  # chatroom-locations.conf: burst=20 nodelay, 20 a minute after it
HEADER_TIMEOUT = 15  # chatroom-http.conf: client_header_timeout


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        database_url = django_database_url()
    log_dir = tmp_path_factory.mktemp("nginx-limits")
    with running_cluster(
        log_dir, database_url, daphnes=1, static_root=log_dir / "static"
    ) as running:
        yield running


def test_login_posts_from_one_address_are_rate_limited(cluster, figure):
    url = cluster.nginx.url
    posts = Counter(
        status_of(
            urllib.request.Request(
                f"{url}{path}", data=b"username=root&password=guess", method="POST"
            )
        )
        for _ in range(POSTS // 2)
        for path in ("/accounts/login/", "/admin/login/")
    )
    pages = Counter(
        status_of(urllib.request.Request(f"{url}/accounts/login/"))
        for _ in range(POSTS)
    )
    figure(f"{POSTS} login posts at once from one address, by status", dict(posts))
    figure(f"{POSTS} login pages at once from one address, by status", dict(pages))
    # Let through: the burst and the one the rate allows, plus one per 3 s
    # that passed meanwhile; refused by Django for want of a CSRF token (403).
    assert posts[403] >= BURST + 1 and posts[403] + posts[429] == POSTS
    assert posts[429] >= POSTS - BURST - 3
    assert pages == {200: POSTS}


def test_trickled_headers_are_cut_off_on_the_default_server(cluster, figure):
    with socket.create_connection(("127.0.0.1", cluster.nginx.port), timeout=5) as conn:
        # A host nginx does not serve: the default server's settings apply.
        conn.sendall(b"GET /ws/chat/x/ HTTP/1.1\r\nHost: not-this-site.example\r\n")
        began = time.monotonic()
        conn.settimeout(HEADER_TIMEOUT + 15)
        answer = conn.recv(4096)
        waited = time.monotonic() - began
    figure(
        "trickled headers: seconds until nginx closed the connection", round(waited, 1)
    )
    assert answer in (b"", b"HTTP/1.1 408") or answer.startswith(b"HTTP/1.1 408")
    assert HEADER_TIMEOUT - 1 <= waited <= HEADER_TIMEOUT + 5
    # Whole headers for that host get no answer at all (return 444).
    with socket.create_connection(("127.0.0.1", cluster.nginx.port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: not-this-site.example\r\n\r\n")
        conn.settimeout(10)
        assert conn.recv(4096) == b""
