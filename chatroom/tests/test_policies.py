"""
Every page is served with a Content-Security-Policy that lets no inline script
or style run and reaches only this site, and a Permissions-Policy that grants
no powerful browser feature: the site's pages, its forms and the admin's alike.
The browser test that the policy blocks an injected script is
tests/browser/test_hostile_text.py.
"""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PAGES = ["chat:lobby", "login", "signup", "admin:login"]


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


@pytest.mark.parametrize("page", PAGES)
def test_pages_carry_a_strict_content_security_policy(client, page):
    response = client.get(reverse(page))
    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    for name in ("default-src", "script-src", "style-src", "connect-src"):
        assert policy[name] == ["'self'"], name
    assert policy["object-src"] == policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


@pytest.mark.parametrize("page", PAGES)
def test_pages_grant_no_powerful_feature(client, page):
    policy = client.get(reverse(page))["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in policy


def test_pages_have_no_inline_script_or_style(auth_client, room):
    """What the policy would block: nothing of the site's own."""
    for url in (reverse("chat:lobby"), reverse("chat:room", args=[room.slug])):
        page = auth_client.get(url).content.decode()
        for script in page.split("<script")[1:]:
            # Data for the scripts (json_script) is not run.
            assert (
                ' src="' in script.split(">")[0] or 'type="application/json"' in script
            )
        assert "<style" not in page and " style=" not in page
        assert " onclick=" not in page and " onload=" not in page
