"""
Message.objects.create_next: the one hand-written statement (PostgreSQL) and
its ORM twin store the same message, chain it to the same one before it, and
refuse the same writes. The twin runs on every database; the statement, and
the comparison, on PostgreSQL.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from chat import services
from chat.models import Message, Room

pytestmark = pytest.mark.django_db

WAYS = ["create_next_with_the_orm", "create_next_in_one_statement"]


@pytest.fixture(params=WAYS)
def create_next(request):
    if request.param.endswith("statement") and connection.vendor != "postgresql":
        pytest.skip("the statement is PostgreSQL's; other databases use the ORM's")
    return getattr(Message.objects, request.param)


def stored(message: Message) -> tuple:
    again = Message.objects.get(pk=message.pk)
    fields = ("room_id", "author_id", "body", "client_id", "created_at")
    assert [getattr(message, f) for f in fields] == [getattr(again, f) for f in fields]
    return tuple(getattr(again, f) for f in fields)


def test_messages_chain_and_move_the_room_on(create_next, room, user):
    first, before_first = create_next(room=room, author=user, body="a", client_id="1")
    second, before_second = create_next(room=room, author=user, body="b", client_id="2")
    assert (before_first, before_second) == (None, first.id)
    assert second.id > first.id
    room.refresh_from_db()
    assert room.last_message_id == second.id
    assert stored(second)[2:4] == ("b", "2")
    assert second.room is room and second.author is user  # no query to read them


def test_a_missing_room_or_a_non_member_is_refused(create_next, room, user, other_user):
    private = services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )
    with pytest.raises(Room.DoesNotExist):
        create_next(room=private, author=other_user, body="in?", client_id="x")
    gone = Room(pk=room.pk + 1000, slug="gone")
    with pytest.raises(Room.DoesNotExist):
        create_next(room=gone, author=user, body="anyone?", client_id="y")
    member, _ = create_next(room=private, author=user, body="mine", client_id="z")
    assert Message.objects.filter(room=private).get() == member


def test_a_used_client_id_is_an_integrity_error_that_leaves_the_caller_able(
    create_next, room, user
):
    create_next(room=room, author=user, body="once", client_id="same")
    with transaction.atomic():  # a caller's transaction goes on afterwards
        with pytest.raises(IntegrityError):
            create_next(room=room, author=user, body="twice", client_id="same")
        assert Message.objects.filter(client_id="same").count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="compares with PostgreSQL's statement"
)
def test_the_statement_and_its_twin_store_the_same(user, other_user):
    """The same writes, each way in rooms of its own: the same outcomes."""

    def outcomes(way: str) -> list:
        create_next = getattr(Message.objects, way)
        public = services.room_create(slug=f"p-{way[-9:]}", title="P", created_by=user)
        private = services.room_create(
            slug=f"s-{way[-9:]}", title="S", created_by=user, is_private=True
        )
        seen, chain = [], {}
        writes = [(public, user), (private, user), (public, other_user)]
        writes += [(private, other_user), (public, user)]
        for number, (room, author) in enumerate(writes):
            try:
                message, prev_id = create_next(
                    room=room,
                    author=author,
                    body=f"m{number}",
                    client_id=f"{way}{number}",
                )
            except Room.DoesNotExist:
                seen.append("refused")
                continue
            previous = chain.get(room.pk)
            seen.append((room.is_private, author.username, prev_id == previous))
            chain[room.pk] = message.id
            assert stored(message)[2:4] == (f"m{number}", f"{way}{number}")
        for room in (public, private):
            room.refresh_from_db()
            assert room.last_message_id == chain.get(room.pk)
        return seen

    assert outcomes(WAYS[0]) == outcomes(WAYS[1])


def test_create_next_picks_the_statement_on_postgresql_only(
    room, user, settings, monkeypatch
):
    chosen = []
    for way in WAYS:
        monkeypatch.setattr(
            Message.objects, way, lambda *, way=way, **kwargs: chosen.append(way)
        )
    for setting in ("statement", "orm"):
        settings.CHAT_MESSAGE_WRITE = setting
        Message.objects.create_next(room=room, author=user, body="b", client_id="c")
    on_postgresql = connection.vendor == "postgresql"
    assert chosen == [WAYS[1] if on_postgresql else WAYS[0], WAYS[0]]
