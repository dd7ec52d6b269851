import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from chat import events, services
from chat.errors import ChatError
from chat.models import Message, Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def broadcasts(monkeypatch, django_capture_on_commit_callbacks):
    """Record what is broadcast, in order, instead of sending it.

    The test runs inside a transaction that never commits; on-commit callbacks
    run when the test's (simulated) commit comes, at the end of the test.
    """
    sent = []
    monkeypatch.setattr(
        events,
        "message_created",
        lambda *, message, prev_id: sent.append((message.id, prev_id)),
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        yield sent
    assert len(sent) == len(callbacks)


def create(room, user, body="hello", client_id="c-1"):
    return services.message_create(
        room=room, author=user, body=body, client_id=client_id
    )


def test_message_is_stored_trimmed_with_increasing_ids(room, user, broadcasts):
    first, created = create(room, user, body="  hello  ", client_id="c-1")
    second, _ = create(room, user, body="again", client_id="c-2")

    assert created
    assert first.body == "hello"
    assert second.id > first.id
    assert list(Message.objects.values_list("body", flat=True)) == ["hello", "again"]
    room.refresh_from_db()
    assert room.last_message_id == second.id


def test_broadcast_names_the_previous_message(
    room, user, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        events, "message_created", lambda **event: sent.append(event["prev_id"])
    )
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = create(room, user, client_id="c-1")
        second, _ = create(room, user, client_id="c-2")
        third, _ = create(room, user, client_id="c-3")

    assert sent == [None, first.id, second.id]


def test_broadcast_waits_for_the_commit(
    room, user, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(events, "message_created", lambda **event: sent.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            create(room, user)
            assert sent == []
        assert sent == []  # still inside the test's own transaction
    assert sent == [1]


def test_nothing_is_broadcast_when_the_transaction_rolls_back(room, user, broadcasts):
    with pytest.raises(RuntimeError), transaction.atomic():
        create(room, user)
        raise RuntimeError("rolled back")
    assert not Message.objects.exists()


def test_same_client_id_is_an_idempotent_retry(room, user, broadcasts):
    first, created_first = create(room, user, body="hello", client_id="retry-me")
    again, created_again = create(room, user, body="hello", client_id="retry-me")

    assert created_first and not created_again
    assert again.id == first.id
    assert Message.objects.count() == 1


def test_client_id_is_per_author(room, user, other_user, broadcasts):
    create(room, user, client_id="same")
    _, created = create(room, other_user, client_id="same")
    assert created
    assert Message.objects.count() == 2


def test_client_id_reused_in_another_room_is_refused(room, user, broadcasts):
    other_room = services.room_create(slug="other", title="Other", created_by=user)
    create(room, user, client_id="once")

    with pytest.raises(ChatError) as error:
        create(other_room, user, client_id="once")
    assert error.value.code == "client_id_reused"
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (None, "empty_body"),
        ("", "empty_body"),
        ("   \n\t ", "empty_body"),
        (42, "invalid_body"),
        (["hello"], "invalid_body"),
        ("x" * 2001, "body_too_long"),
        ("nul \x00 byte", "invalid_body"),
        ("lone \ud800 surrogate", "invalid_body"),
    ],
)
def test_bad_body_is_refused_and_nothing_stored(room, user, broadcasts, body, code):
    with pytest.raises(ChatError) as error:
        create(room, user, body=body)
    assert error.value.code == code
    assert error.value.detail
    assert not Message.objects.exists()


def test_body_at_the_limit_is_accepted(room, user, broadcasts, settings):
    settings.CHAT_MESSAGE_MAX_LENGTH = 10
    message, _ = create(room, user, body="x" * 10)
    assert message.body == "x" * 10
    with pytest.raises(ChatError):
        create(room, user, body="x" * 11, client_id="c-2")


@pytest.mark.parametrize(
    "client_id", [None, "", 7, "x" * 65, "nul\x00", "\udfff", {"id": 1}]
)
def test_bad_client_id_is_refused(room, user, broadcasts, client_id):
    with pytest.raises(ChatError) as error:
        create(room, user, client_id=client_id)
    assert error.value.code == "invalid_client_id"
    assert not Message.objects.exists()


def test_many_at_once_answer_each_request_and_broadcast_in_order(
    room, user, other_user, monkeypatch, django_capture_on_commit_callbacks
):
    """message_create_many (chat.writes' batches): a refused request leaves the
    others stored, and each room's broadcasts chain in the order asked."""
    sent = []
    monkeypatch.setattr(
        events,
        "message_created",
        lambda *, message, prev_id: sent.append((message.body, prev_id)),
    )
    elsewhere = services.room_create(slug="elsewhere", title="E", created_by=user)
    private = services.room_create(
        slug="private", title="P", created_by=user, is_private=True
    )
    earlier, _ = create(elsewhere, user, body="earlier", client_id="taken")

    def request(room, author, body, client_id):
        return services.MessageRequest(
            room=room, author=author, body=body, client_id=client_id
        )

    with django_capture_on_commit_callbacks(execute=True):
        results = services.message_create_many(
            requests=[
                request(room, user, "one", "1"),
                request(room, user, " ", "2"),
                request(private, other_user, "in?", "3"),
                request(room, user, "taken here", "taken"),
                request(elsewhere, user, "retried", "taken"),
                request(room, other_user, "two", "1"),
            ]
        )
    one, blank, not_member, reused, retried, two = results
    assert [error.code for error in (blank, not_member, reused)] == [
        "empty_body",
        "room_not_found",
        "client_id_reused",
    ]
    assert retried == (earlier, False)
    assert one[1] and two[1]
    assert sent == [("one", None), ("two", one[0].id)]
    room.refresh_from_db()
    assert room.last_message_id == two[0].id


def test_html_is_stored_verbatim(room, user, broadcasts):
    payload = '<img src=x onerror=alert(1)> "quotes" </script>'
    message, _ = create(room, user, body=payload)
    message.refresh_from_db()
    assert message.body == payload


def test_room_create_validates_the_slug(user):
    room = services.room_create(slug="news", title="News", created_by=user)
    assert Room.objects.get(slug="news") == room

    with pytest.raises(ValidationError):
        services.room_create(slug="news", title="Again", created_by=user)
    with pytest.raises(ValidationError):
        services.room_create(slug="not a slug!", title="Bad", created_by=user)
    assert Room.objects.count() == 1


# --- Outside any transaction, as the servers call it --------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", ["statement", "orm"])
def test_writers_at_once_chain_each_message_to_the_one_before(
    room, make_user, monkeypatch, settings, write
):
    """Eight connections writing to one room at once: every broadcast's prev_id
    is the message stored just before it, so no client sees a gap that is not
    there (and resumes for nothing). Both ways of writing (chat/managers.py)."""
    settings.CHAT_MESSAGE_RATE_LIMIT = ""
    settings.CHAT_MESSAGE_WRITE = write
    authors = [make_user(f"writer{n}") for n in range(8)]
    sent, lock = [], threading.Lock()

    def record(*, message, prev_id):
        with lock:
            sent.append((message.id, prev_id))

    monkeypatch.setattr(events, "message_created", record)

    def write(author):
        try:
            for n in range(25):
                create(room, author, body=f"message {n}", client_id=str(n))
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(len(authors)) as pool:
        list(pool.map(write, authors))

    sent.sort()
    ids = [message_id for message_id, _ in sent]
    assert len(ids) == Message.objects.filter(room=room).count() == 200
    assert [prev_id for _, prev_id in sent] == [None, *ids[:-1]]
    room.refresh_from_db()
    assert room.last_message_id == ids[-1]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_batches_at_once_over_the_same_rooms_neither_deadlock_nor_break_chains(
    user, make_user, monkeypatch, settings
):
    """Four connections storing batches over the same three rooms, named in
    opposite orders: rooms are locked in one order, so no batch waits for
    another's locks in a circle (PostgreSQL would abort one), and each room's
    broadcasts still chain."""
    settings.CHAT_MESSAGE_RATE_LIMIT = ""
    rooms = [
        services.room_create(slug=f"r{n}", title=f"R{n}", created_by=user)
        for n in range(3)
    ]
    authors = [make_user(f"batcher{n}") for n in range(4)]
    sent, lock = [], threading.Lock()

    def record(*, message, prev_id):
        with lock:
            sent.append((message.room_id, message.id, prev_id))

    monkeypatch.setattr(events, "message_created", record)

    def write(number):
        author = authors[number]
        order = rooms if number % 2 else rooms[::-1]
        try:
            for batch in range(15):
                results = services.message_create_many(
                    requests=[
                        services.MessageRequest(
                            room=room, author=author, body="hi", client_id=f"{batch}{n}"
                        )
                        for n, room in enumerate(order)
                    ]
                )
                assert all(isinstance(result, tuple) for result in results)
        finally:
            connection.close()

    with ThreadPoolExecutor(len(authors)) as pool:
        list(pool.map(write, range(len(authors))))

    assert len(sent) == Message.objects.count() == 4 * 15 * 3
    for room in rooms:
        chain = sorted((id_, prev) for room_id, id_, prev in sent if room_id == room.pk)
        ids = [id_ for id_, _ in chain]
        assert [prev for _, prev in chain] == [None, *ids[:-1]]


@pytest.mark.django_db(transaction=True)
def test_retries_and_refusals_in_autocommit_leave_the_connection_usable(
    room, user, other_user, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        events, "message_created", lambda *, message, prev_id: sent.append(prev_id)
    )
    first, _ = create(room, user, client_id="once")
    again, created = create(room, user, client_id="once")
    assert (again.id, created) == (first.id, False)

    private = services.room_create(
        slug="private", title="Private", created_by=user, is_private=True
    )
    with pytest.raises(ChatError) as error:
        create(private, other_user, client_id="in-private")
    assert error.value.code == "room_not_found"

    second, created = create(room, user, client_id="twice")
    assert created and sent == [None, first.id]
    stored = Message.objects.select_related("author").get(pk=second.id)
    assert (stored.body, stored.author, stored.created_at) == (
        second.body,
        user,
        second.created_at,
    )
    assert list(Message.objects.values_list("client_id", flat=True)) == [
        "once",
        "twice",
    ]
