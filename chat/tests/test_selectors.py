import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from chat import selectors, services

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
    """The handshake's lookup finds what the lobby's definition finds, for a
    member, an outsider and an anonymous visitor alike."""
    private = services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )
    services.room_member_add(room=private, username="bob", added_by=user)
    viewers = [user, other_user, make_user("mallory"), AnonymousUser()]
    for viewer in viewers:
        for slug in ("general", private.slug, "missing"):
            expected = selectors.rooms_visible_to(user=viewer).filter(slug=slug).first()
            assert selectors.room_get(slug=slug, user=viewer) == expected, (
                viewer,
                slug,
            )


def test_room_get_of_a_public_room_costs_one_query(
    room, user, django_assert_num_queries
):
    with django_assert_num_queries(1):
        selectors.room_get(slug="general", user=user)


def test_socket_grants_are_checked_in_four_queries_however_many(
    django_assert_num_queries, make_user, room
):
    private = services.room_create(
        slug="private", title="Private", created_by=room.created_by, is_private=True
    )
    grants = []
    for n in range(20):
        member = make_user(f"member-{n}")
        private.members.add(member)
        client = Client()  # a session of its own
        client.force_login(member)
        for room_id in (room.pk, private.pk):
            grants.append(
                selectors.SocketGrant(
                    user_id=member.pk,
                    session_key=client.session.session_key,
                    session_hash=member.get_session_auth_hash(),
                    room_id=room_id,
                )
            )
    with django_assert_num_queries(4):
        assert selectors.socket_grants_revoked(grants=grants) == {}
    private.members.remove(member)
    assert set(selectors.socket_grants_revoked(grants=grants).values()) == {
        selectors.ROOM_NOT_FOUND
    }
