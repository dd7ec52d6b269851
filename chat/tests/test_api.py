import json

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import protocol, selectors, services
from chat.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def url(room):
    return reverse("chat:api:room_messages", kwargs={"slug": room.slug})


@pytest.fixture
def no_broadcast(monkeypatch):
    monkeypatch.setattr("chat.events.message_created", lambda **event: None)


@pytest.fixture
def ids(room, user, no_broadcast):
    return [
        services.message_create(
            room=room, author=user, body=f"m{n}", client_id=f"c{n}"
        )[0].id
        for n in range(5)
    ]


def post_json(client, url, data, **extra):
    body = data if isinstance(data, str) else json.dumps(data)
    return client.post(url, body, content_type="application/json", **extra)


def error_code(response):
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]["code"]


# --- History ----------------------------------------------------------------


def test_history_newest_page(auth_client, url, ids):
    data = auth_client.get(url, {"limit": 2}).json()
    assert [m["id"] for m in data["messages"]] == ids[-2:]
    assert data["has_more"] is True
    assert data["messages"][0] == {
        "type": "message",
        "id": ids[-2],
        "room": "general",
        "author": "alice",
        "body": "m3",
        "created_at": data["messages"][0]["created_at"],
        "client_id": "c3",
    }


def test_history_after_and_before(auth_client, url, ids):
    after = auth_client.get(url, {"after": ids[1]}).json()
    assert [m["id"] for m in after["messages"]] == ids[2:]
    assert after["has_more"] is False
    before = auth_client.get(url, {"before": ids[3], "limit": 2}).json()
    assert [m["id"] for m in before["messages"]] == ids[1:3]
    assert before["has_more"] is True


def test_history_default_and_maximum_limit(auth_client, url, ids, settings):
    settings.CHAT_HISTORY_PAGE_SIZE = 3
    assert len(auth_client.get(url).json()["messages"]) == 3
    settings.CHAT_HISTORY_MAX_LIMIT = 4
    assert len(auth_client.get(url, {"limit": 4}).json()["messages"]) == 4


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"after": "x"}, "invalid_after"),
        ({"after": "-1"}, "invalid_after"),
        ({"after": "1.5"}, "invalid_after"),
        ({"after": "٣"}, "invalid_after"),
        ({"before": "abc"}, "invalid_before"),
        ({"before": "9" * 5000}, "invalid_before"),
        ({"after": "1", "before": "5"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "201"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"limit": "9" * 5000}, "invalid_limit"),
    ],
)
def test_history_bad_parameters_are_400(auth_client, url, ids, params, code):
    response = auth_client.get(url, params)
    assert response.status_code == 400
    assert error_code(response) == code


def test_history_of_unknown_room_is_404(auth_client):
    response = auth_client.get(
        reverse("chat:api:room_messages", kwargs={"slug": "nope"})
    )
    assert response.status_code == 404
    assert error_code(response) == "room_not_found"


def test_history_needs_login(client, url):
    response = client.get(url)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_history_query_count_does_not_grow_with_the_page(
    auth_client, url, ids, django_assert_max_num_queries
):
    # session + user + the room + one page, whatever its size
    with django_assert_max_num_queries(4):
        assert len(auth_client.get(url, {"limit": 5}).json()["messages"]) == 5


def test_a_page_of_50_messages_by_50_authors_costs_a_fixed_few_queries(
    auth_client, url, room, make_user, no_broadcast
):
    for n in range(51):
        services.message_create(
            room=room, author=make_user(f"author{n}"), body="hi", client_id="c"
        )
    for params in ({}, {"limit": 1}, {"before": Message.objects.last().id}):
        with CaptureQueriesContext(connection) as queries:
            data = auth_client.get(url, params).json()
        assert len(data["messages"]) == params.get("limit", 50)
        assert len({m["author"] for m in data["messages"]}) == len(data["messages"])
        sql = [query["sql"] for query in queries]
        # the session, the user, the room, and one query for its page
        assert len(sql) == 4, sql
        assert sum('FROM "chat_message"' in query for query in sql) == 1, sql


def test_history_frames_are_the_message_frames(auth_client, url, room, ids):
    """The history API's JSON is exactly what message_frame makes of the models."""
    cases = [({}, {}), ({"after": ids[1]}, {"after": ids[1]})]
    cases.append(({"before": ids[3], "limit": 2}, {"before": ids[3]}))
    for params, cursor in cases:
        page = selectors.message_list(
            room=room, limit=params.get("limit", 50), **cursor
        )
        response = auth_client.get(url, params)
        assert response["Content-Type"] == "application/json"
        assert response.json() == {
            "messages": [protocol.message_frame(m) for m in page.messages],
            "has_more": page.has_more,
        }


def test_history_of_an_empty_room(auth_client, url, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):  # the page, then the room's existence
        response = auth_client.get(url)
    assert response.status_code == 200
    assert response.json() == {"messages": [], "has_more": False}


def test_unknown_room_is_404_before_bad_parameters(auth_client):
    url = reverse("chat:api:room_messages", kwargs={"slug": "nope"})
    for params in ({"after": "x"}, {"limit": "0"}, {"after": "1", "before": "2"}):
        response = auth_client.get(url, params)
        assert response.status_code == 404
        assert error_code(response) == "room_not_found"
    assert auth_client.delete(url).status_code == 404


def test_history_of_a_deleted_room_is_404(auth_client, url, room, ids):
    room.delete()
    response = auth_client.get(url)
    assert response.status_code == 404
    assert error_code(response) == "room_not_found"


# --- The history cache (CHAT_HISTORY_CACHE_SECONDS) ---------------------------


def message_queries(queries) -> list[str]:
    return [query["sql"] for query in queries if 'FROM "chat_message"' in query["sql"]]


def test_a_page_served_again_costs_no_message_query(auth_client, url, ids):
    first = auth_client.get(url, {"limit": 3})
    with CaptureQueriesContext(connection) as queries:
        again = auth_client.get(url, {"limit": 3})
    assert again.json() == first.json()
    assert message_queries(queries) == []
    # Another cursor or limit is another page.
    with CaptureQueriesContext(connection) as queries:
        other = auth_client.get(url, {"limit": 2})
    assert len(other.json()["messages"]) == 2
    assert len(message_queries(queries)) == 1


def test_a_new_message_shows_at_once_on_a_cached_page(auth_client, url, room, ids):
    assert [m["id"] for m in auth_client.get(url).json()["messages"]] == ids
    new, _created = services.message_create(
        room=room, author=room.created_by, body="new", client_id="c-new"
    )
    assert [m["id"] for m in auth_client.get(url).json()["messages"]] == [*ids, new.id]
    # Pollers asking for what follows the old last message see it too.
    after = auth_client.get(url, {"after": ids[-1]}).json()["messages"]
    assert [m["id"] for m in after] == [new.id]


def test_a_cached_page_is_never_served_to_a_non_member(
    client, user, other_user, no_broadcast
):
    secret = services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )
    services.message_create(room=secret, author=user, body="psst", client_id="c")
    url = reverse("chat:api:room_messages", kwargs={"slug": secret.slug})
    client.force_login(user)
    assert client.get(url).json()["messages"][0]["body"] == "psst"
    client.force_login(other_user)
    response = client.get(url)
    assert response.status_code == 404
    assert error_code(response) == "room_not_found"


def test_no_page_is_kept_with_cache_seconds_0(auth_client, url, ids, settings):
    history = {**settings.CACHES["chat_history"], "TIMEOUT": 0}
    settings.CACHES = {**settings.CACHES, "chat_history": history}
    auth_client.get(url)
    with CaptureQueriesContext(connection) as queries:
        auth_client.get(url)
    assert len(message_queries(queries)) == 1


# --- Posting ----------------------------------------------------------------


def test_post_stores_and_returns_the_message(auth_client, url, no_broadcast):
    response = post_json(auth_client, url, {"body": "hello", "client_id": "h-1"})
    assert response.status_code == 201
    frame = response.json()
    assert frame["body"] == "hello"
    assert frame["author"] == "alice"
    assert frame["client_id"] == "h-1"
    assert Message.objects.get().id == frame["id"]


def test_post_retry_returns_the_stored_message(auth_client, url, no_broadcast):
    first = post_json(auth_client, url, {"body": "hello", "client_id": "h-1"})
    again = post_json(auth_client, url, {"body": "hello", "client_id": "h-1"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Message.objects.count() == 1


def test_post_without_client_id_gets_one(auth_client, url, no_broadcast):
    response = post_json(auth_client, url, {"body": "hello"})
    assert response.status_code == 201
    assert response.json()["client_id"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("not json", "invalid_json"),
        ("[1]", "invalid_json"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
        ({"client_id": "x"}, "empty_body"),
        ({"body": "   "}, "empty_body"),
        ({"body": 5}, "invalid_body"),
        ({"body": "a\u0000b"}, "invalid_body"),
        ('{"body": "\\ud800"}', "invalid_body"),
        ({"body": "x" * 2001}, "body_too_long"),
        ({"body": "hi", "client_id": "x" * 65}, "invalid_client_id"),
        ({"body": "hi", "client_id": 5}, "invalid_client_id"),
        ({"body": "hi", "client_id": ""}, "invalid_client_id"),
        ({"body": "hi", "client_id": 0}, "invalid_client_id"),
        ({"body": "hi", "client_id": False}, "invalid_client_id"),
        ({"body": "hi", "client_id": []}, "invalid_client_id"),
    ],
)
def test_post_bad_input_is_400_and_stores_nothing(
    auth_client, url, no_broadcast, payload, code
):
    response = post_json(auth_client, url, payload)
    assert response.status_code == 400
    assert error_code(response) == code
    assert response.json()["error"]["detail"]
    assert not Message.objects.exists()


def test_post_too_large_is_413(auth_client, url, no_broadcast, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_json(auth_client, url, {"body": "x" * 2000})
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_anonymous_post_is_401_and_stores_nothing(client, url):
    response = post_json(client, url, {"body": "hi"})
    assert response.status_code == 401
    assert not Message.objects.exists()


def test_other_methods_are_405(auth_client, url):
    response = auth_client.delete(url)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert error_code(response) == "method_not_allowed"


# --- CSRF -------------------------------------------------------------------


@pytest.fixture
def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("chat:room", kwargs={"slug": "general"}))
    return client


def test_post_without_csrf_token_is_403(csrf_client, url, room):
    response = post_json(csrf_client, url, {"body": "hi"})
    assert response.status_code == 403
    assert error_code(response) == "csrf_failed"
    assert not Message.objects.exists()


def test_post_with_csrf_token_is_accepted(csrf_client, url, room, no_broadcast):
    token = csrf_client.cookies["csrftoken"].value
    response = post_json(csrf_client, url, {"body": "hi"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


def test_post_from_a_foreign_origin_is_403(csrf_client, url, room):
    token = csrf_client.cookies["csrftoken"].value
    response = post_json(
        csrf_client,
        url,
        {"body": "hi"},
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="http://evil.example",
    )
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_database_down_is_503_with_a_json_error(auth_client, url, monkeypatch):
    def fail(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("chat.services.message_create", fail)
    response = post_json(auth_client, url, {"body": "hi", "client_id": "c"})
    assert response.status_code == 503
    assert error_code(response) == "unavailable"


def test_post_that_is_not_json_is_415(auth_client, url):
    response = auth_client.post(url, {"body": "hi"})  # multipart form data
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
    assert not Message.objects.exists()


def test_post_to_a_room_deleted_meanwhile_is_404(auth_client, room, monkeypatch):
    """The room vanishes between the view's lookup and the insert."""
    from chat import selectors

    found = selectors.room_get(slug="general", user=room.created_by)
    monkeypatch.setattr(selectors, "room_get", lambda *, slug, user: found)
    room.delete()
    response = post_json(
        auth_client, "/api/rooms/general/messages/", {"body": "hi", "client_id": "c"}
    )
    assert response.status_code == 404
    assert error_code(response) == "room_not_found"


def test_anonymous_post_without_token_is_refused_by_csrf_first(url, room):
    response = post_json(Client(enforce_csrf_checks=True), url, {"body": "hi"})
    assert response.status_code == 403
    assert error_code(response) == "csrf_failed"
    assert not Message.objects.exists()
