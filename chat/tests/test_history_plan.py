"""
How PostgreSQL runs a history page (selectors.message_list): what it returns is
tested in test_selectors; here, what it costs in rows read, however big the
room (the (room, id) index, chat/models.py).
"""

import json

import pytest
from django.db import connection

from chat import selectors
from chat.models import Message, Room

pytestmark = [pytest.mark.services, pytest.mark.django_db]

LIMIT = 50
BIG_ROOM_MESSAGES = 6_000
SMALL_ROOMS, SMALL_ROOM_MESSAGES = 60, 20


@pytest.fixture
def skewed_rooms(room, user) -> Room:
    """One room holding most of the messages, as a busy site's main room does,
    and many small ones: PostgreSQL's statistics then describe an average room
    much smaller than the big one. Returns the big room."""
    rooms = Room.objects.bulk_create(
        Room(slug=f"small-{n}", title=f"Small {n}", created_by=user)
        for n in range(SMALL_ROOMS)
    )
    messages = [
        Message(room=room, author=user, body=f"big {n}", client_id=f"big-{n}")
        for n in range(BIG_ROOM_MESSAGES)
    ]
    messages += [
        Message(room=small, author=user, body=f"{n}", client_id=f"{small.slug}-{n}")
        for small in rooms
        for n in range(SMALL_ROOM_MESSAGES)
    ]
    Message.objects.bulk_create(messages, batch_size=2_000)
    with connection.cursor() as cursor:
        for model in (Room, Message):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return room


def page_queries(**page) -> list[tuple[str, list]]:
    """The statements, with their parameters, that one history page runs."""
    ran = []

    def record(execute, sql, params, many, context):
        ran.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        selectors.message_list(**page)
    return ran


def message_rows_read(sql: str, params: list) -> int:
    """Rows PostgreSQL read from the message table to run `sql`."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)

    def walk(node: dict) -> int:
        own = 0
        if node.get("Relation Name") == Message._meta.db_table:
            own = node["Actual Rows"] * node["Actual Loops"]
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan[0]["Plan"])


@pytest.mark.parametrize("walk", ["newest", "before", "after"])
def test_a_page_of_a_big_room_reads_only_that_page(skewed_rooms, walk):
    latest = Message.objects.filter(room=skewed_rooms).latest("id").id
    cursor = {"newest": {}, "before": {"before": latest - 100}}.get(
        walk, {"after": latest - 1_000}
    )
    [(sql, params)] = page_queries(room=skewed_rooms, limit=LIMIT, **cursor)

    # The limit plus the one row that tells whether there is more.
    assert message_rows_read(sql, params) == LIMIT + 1
