"""The project's views: sign-up, and the answer to a failed CSRF check."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from chat import services

pytestmark = pytest.mark.django_db


def test_signup_logs_the_new_user_in(client):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "password1": "a-long-test-password-42",
            "password2": "a-long-test-password-42",
        },
    )
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="carol").exists()
    lobby = client.get(reverse("chat:lobby")).content.decode()
    assert "carol" in lobby


def test_signup_errors_are_shown(client):
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": "a", "password2": "b"},
    )
    assert response.status_code == 200
    assert not get_user_model().objects.exists()
    assert b"errorlist" in response.content


def test_signup_next_must_be_local(client):
    response = client.post(
        reverse("signup"),
        {
            "username": "dave",
            "password1": "a-long-test-password-42",
            "password2": "a-long-test-password-42",
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == reverse("chat:lobby")


def test_signup_keeps_next_through_the_form(client, room):
    target = reverse("chat:room", kwargs={"slug": "general"})
    page = client.get(reverse("signup"), {"next": target}).content.decode()
    assert f'name="next" value="{target}"' in page
    response = client.post(
        reverse("signup"),
        {
            "username": "erin",
            "password1": "a-long-test-password-42",
            "password2": "a-long-test-password-42",
            "next": target,
        },
    )
    assert response["Location"] == target


def test_a_csrf_failure_in_the_api_is_json(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    services.room_create(slug="general", title="General", created_by=user)
    url = reverse("chat:api:room_messages", kwargs={"slug": "general"})
    response = client.post(url, json.dumps({"body": "hi"}), "application/json")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "csrf_failed"


def test_a_csrf_failure_on_a_page_is_djangos_page(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("chat:lobby"), {"title": "New", "slug": "new"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"CSRF verification failed" in response.content
