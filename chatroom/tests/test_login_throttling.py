"""
Logins are throttled by django-axes: after DJANGO_LOGIN_FAILURE_LIMIT failed
logins for one username from one address, that username is locked out from
that address, on the site's login and the admin's alike, right password or
not, with a page that says why (429), until the cool-off has passed. Others
log in as before. The count lives in the database, so every server process
sees it (tests/test_login_throttling_servers.py shows it through gunicorn).
"""

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-42"


@pytest.fixture
def alice(make_user):
    user = make_user("alice")
    user.set_password(PASSWORD)
    user.is_staff = True
    user.save()
    return user


def log_in(client: Client, page: str, username: str, password: str):
    return client.post(reverse(page), {"username": username, "password": password})


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_a_username_is_locked_out_after_the_limit(settings, alice, page):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = log_in(attacker, page, "alice", "wrong")
        assert response.status_code == 200  # the form again, with its error
    locked = log_in(attacker, page, "alice", "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Locked out: the right password is refused too, on both login pages.
    for either in ("login", "admin:login"):
        response = log_in(attacker, either, "alice", PASSWORD)
        assert response.status_code == 429
        assert "_auth_user_id" not in attacker.session
    # alice from her own address, and others from the attacker's, log in.
    assert (
        log_in(Client(REMOTE_ADDR="198.51.100.7"), page, "alice", PASSWORD).status_code
        == 302
    )


def test_a_success_clears_the_count(settings, alice):
    client = Client(REMOTE_ADDR="203.0.113.10")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "login", "alice", "wrong")
    assert log_in(client, "login", "alice", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()


def test_the_lockout_ends_after_the_cool_off(settings, alice):
    client = Client(REMOTE_ADDR="203.0.113.11")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "login", "alice", "wrong")
    assert log_in(client, "login", "alice", PASSWORD).status_code == 429
    # The cool-off counts from the last failure: move it back past it.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME
    )
    assert log_in(client, "login", "alice", PASSWORD).status_code == 302
