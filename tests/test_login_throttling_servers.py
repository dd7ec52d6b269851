"""
Failed logins are counted across processes: posted in turn to gunicorn and to
Daphne (which serves the same Django views over ASGI), they lock the username
out on both once DJANGO_LOGIN_FAILURE_LIMIT is reached (django-axes counts in
the shared database).
"""

import pytest

from .live import started_servers
from .webclient import PASSWORD, Browser, sign_up

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

FAILURE_LIMIT = 3


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
    with started_servers(
        tmp_path_factory, ("daphne",), DJANGO_LOGIN_FAILURE_LIMIT=str(FAILURE_LIMIT)
    ) as started:
        yield started


def log_in(browser: Browser, password: str) -> tuple[int, str]:
    return browser.submit_form(
        "/accounts/login/", {"username": "sam", "password": password}
    )


def test_failed_logins_on_gunicorn_and_daphne_add_up(servers):
    sign_up(servers["gunicorn"].url, "sam")
    both = [Browser(servers["gunicorn"].url), Browser(servers["daphne"].url)]
    answers = [
        log_in(both[attempt % 2], "wrong")[0] for attempt in range(FAILURE_LIMIT)
    ]
    assert answers == [200] * (FAILURE_LIMIT - 1) + [429]
    for browser in both:
        status, page = log_in(browser, PASSWORD)
        assert status == 429
        assert "Too many failed logins" in page
