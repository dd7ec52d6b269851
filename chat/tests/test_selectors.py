import pytest
from django.contrib.auth.models import AnonymousUser

from chat import selectors, services
from chat.models import Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def ids(room, user, monkeypatch):
    monkeypatch.setattr("chat.events.message_created", lambda **kwargs: None)
    return [
        services.message_create(
            room=room, author=user, body=f"m{n}", client_id=f"c{n}"
        )[0].id
        for n in range(7)
    ]


def page_ids(page):
    return [message.id for message in page.messages]


def test_newest_page_is_oldest_first(room, ids):
    page = selectors.message_list(room=room, limit=3)
    assert page_ids(page) == ids[-3:]
    assert page.has_more


def test_after_walks_forward(room, ids):
    page = selectors.message_list(room=room, after=ids[1], limit=3)
    assert page_ids(page) == ids[2:5]
    assert page.has_more
    last = selectors.message_list(room=room, after=ids[4], limit=3)
    assert page_ids(last) == ids[5:]
    assert not last.has_more


def test_before_walks_back(room, ids):
    page = selectors.message_list(room=room, before=ids[4], limit=3)
    assert page_ids(page) == ids[1:4]
    assert page.has_more
    first = selectors.message_list(room=room, before=ids[1], limit=3)
    assert page_ids(first) == ids[:1]
    assert not first.has_more


def test_pages_belong_to_one_room(room, user, ids):
    other = services.room_create(slug="other", title="Other", created_by=user)
    assert selectors.message_list(room=other, limit=50).messages == []
    assert page_ids(selectors.message_list(room=room, limit=50)) == ids


def test_a_page_costs_one_query(room, ids, django_assert_num_queries):
    with django_assert_num_queries(1):
        page = selectors.message_list(room=room, limit=50)
        [(m.author.username, m.room.slug) for m in page.messages]


def test_room_get(room, user):
    assert selectors.room_get(slug="general", user=user) == room
    assert selectors.room_get(slug="missing", user=user) is None


def test_room_get_is_rooms_visible_to(room, user, other_user, make_user):
    """The hand-written lookup finds what the ORM's definition finds, field for
    field, for a member, an outsider and an anonymous visitor alike."""
    private = services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )
    services.room_member_add(room=private, username="bob", added_by=user)
    viewers = [user, other_user, make_user("mallory"), AnonymousUser()]
    for viewer in viewers:
        for slug in ("general", "secret", "missing"):
            expected = selectors.rooms_visible_to(user=viewer).filter(slug=slug).first()
            found = selectors.room_get(slug=slug, user=viewer)
            assert found == expected, (viewer, slug)
            if expected is not None:
                fields = [field.attname for field in Room._meta.concrete_fields]
                assert [getattr(found, name) for name in fields] == [
                    getattr(expected, name) for name in fields
                ]
    assert selectors.room_get(slug="secret", user=AnonymousUser()) is None


def test_room_get_costs_one_query(room, user, django_assert_num_queries):
    with django_assert_num_queries(1):
        selectors.room_get(slug="general", user=user)


def row_ids(page):
    return [row[0] for row in page.rows]


@pytest.mark.parametrize(
    "cursor", [{}, {"after": 1}, {"after": 4}, {"before": 4}, {"before": 1}]
)
def test_message_rows_are_the_pages_of_message_list(room, user, ids, cursor):
    # cursors are offsets into ids, whatever ids the database handed out
    cursor = {name: ids[offset] for name, offset in cursor.items()}
    for limit in (1, 3, 50):
        page = selectors.message_list(room=room, limit=limit, **cursor)
        rows = selectors.message_rows(slug="general", user=user, limit=limit, **cursor)
        assert row_ids(rows) == page_ids(page)
        assert rows.has_more == page.has_more
        assert rows.rows == [
            (m.id, m.author.get_username(), m.body, m.created_at, m.client_id)
            for m in page.messages
        ]


def test_message_rows_of_a_missing_or_empty_room(room, user, ids):
    assert selectors.message_rows(slug="missing", user=user, limit=50) is None
    services.room_create(slug="other", title="Other", created_by=user)
    empty = selectors.message_rows(slug="other", user=user, limit=50)
    assert empty.rows == [] and not empty.has_more
    assert (
        selectors.message_rows(slug="general", user=user, after=ids[-1], limit=50).rows
        == []
    )


def test_message_rows_cost_one_query(room, user, ids, django_assert_num_queries):
    with django_assert_num_queries(1):
        selectors.message_rows(slug="general", user=user, limit=50)


def test_room_exists(room, user):
    assert selectors.room_exists(slug="general", user=user)
    assert not selectors.room_exists(slug="missing", user=user)
