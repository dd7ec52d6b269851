"""
Message.objects.create_next and create_next_many: the one hand-written
statement (PostgreSQL) and its ORM twin store the same messages, chain each to
the same one before it, and refuse the same writes. The twin runs on every
database; the statement, and the comparison, on PostgreSQL.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from chat import services
from chat.managers import Stored
from chat.models import Message, Room

pytestmark = pytest.mark.django_db

WAYS = ["orm", "statement"]  # CHAT_MESSAGE_WRITE


@pytest.fixture(params=WAYS)
def way(request, settings):
    if request.param == "statement" and connection.vendor != "postgresql":
        pytest.skip("the statement is PostgreSQL's; other databases use the ORM's")
    settings.CHAT_MESSAGE_WRITE = request.param
    return request.param


@pytest.fixture
def create_next(way):
    return Message.objects.create_next


def stored_row(message: Message) -> tuple:
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
    assert stored_row(second)[2:4] == ("b", "2")
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
def test_the_statement_and_its_twin_store_the_same(user, other_user, settings):
    """The same writes, each way in rooms of its own: the same outcomes."""

    def outcomes(way: str) -> list:
        settings.CHAT_MESSAGE_WRITE = way
        create_next = Message.objects.create_next
        public = services.room_create(slug=f"p-{way}", title="P", created_by=user)
        private = services.room_create(
            slug=f"s-{way}", title="S", created_by=user, is_private=True
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
            assert stored_row(message)[2:4] == (f"m{number}", f"{way}{number}")
        for room in (public, private):
            room.refresh_from_db()
            assert room.last_message_id == chain.get(room.pk)
        return seen

    assert outcomes(WAYS[0]) == outcomes(WAYS[1])


def test_create_next_picks_the_statement_on_postgresql_only(
    room, user, settings, monkeypatch
):
    chosen = []

    def with_the_orm(draft):
        chosen.append("create_next_with_the_orm")
        return Stored(draft, 1)

    def in_statements(drafts):
        chosen.append("create_next_many_in_statements")
        return [Stored(drafts[0], 1)]

    monkeypatch.setattr(Message.objects, "create_next_with_the_orm", with_the_orm)
    monkeypatch.setattr(
        Message.objects, "create_next_many_in_statements", in_statements
    )
    for setting in ("statement", "orm"):
        settings.CHAT_MESSAGE_WRITE = setting
        Message.objects.create_next(room=room, author=user, body="b", client_id="c")
    on_postgresql = connection.vendor == "postgresql"
    statement = "create_next_many_in_statements"
    orm = "create_next_with_the_orm"
    assert chosen == [statement if on_postgresql else orm, orm]


# --- Several at once (chat.writes gathers a process's waiting messages) -------


def test_a_batch_stores_each_message_or_says_why_not(way, room, user, other_user):
    """Refusals and retries in a batch leave the rest stored, each room's
    messages chained in the order given, whatever order the rooms are locked in."""
    second_room = services.room_create(slug="second", title="Second", created_by=user)
    private = services.room_create(
        slug="secret", title="Secret", created_by=user, is_private=True
    )
    used, _ = Message.objects.create_next(
        room=room, author=user, body="earlier", client_id="used"
    )

    def draft(room, author, client_id):
        return Message(room=room, author=author, body=client_id, client_id=client_id)

    # The later room first: rooms are locked in id order, messages keep theirs.
    drafts = [
        draft(second_room, user, "b1"),
        draft(room, user, "a1"),
        draft(private, other_user, "not-a-member"),
        draft(room, user, "used"),
        draft(second_room, other_user, "b2"),
        draft(room, other_user, "a2"),
        draft(room, other_user, "a2"),  # the same send twice in one batch
    ]
    stored = Message.objects.create_next_many(drafts)

    b1, a1, refused, retried, b2, a2, a2_again = stored
    assert (refused, retried) == (Stored(None), Stored(None, duplicate=True))
    assert a2_again == Stored(None, duplicate=True)
    assert (a1.prev_id, a2.prev_id) == (used.id, a1.message.id)
    assert (b1.prev_id, b2.prev_id) == (None, b1.message.id)
    assert a1.message.id < a2.message.id and b1.message.id < b2.message.id
    for result in (a1, a2, b1, b2):
        assert stored_row(result.message)[2] == result.message.client_id
    room.refresh_from_db()
    second_room.refresh_from_db()
    assert (room.last_message_id, second_room.last_message_id) == (
        a2.message.id,
        b2.message.id,
    )
    assert Message.objects.count() == 5


def test_an_empty_batch_stores_nothing(way):
    assert Message.objects.create_next_many([]) == []
