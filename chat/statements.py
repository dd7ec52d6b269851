"""
The chat's hottest statements, written out by hand: a history page (read on
every page load and poll), a message's write (on every message sent) and a
room's lookup (on every socket's handshake and room page).

For each, the ORM spent longer building and compiling the query than the
database spent running it, on every call. Each statement is written once, from
the models' table and column names, and cached; the tests hold it to the ORM's
behaviour (test_selectors, test_services) and to the rows PostgreSQL reads
(test_statements). The write is PostgreSQL's; other databases use the ORM.
"""

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from .models import Message, Room


def _table(meta) -> str:
    return connection.ops.quote_name(meta.db_table)


def _column(meta, name: str) -> str:
    return connection.ops.quote_name(meta.get_field(name).column)


def _is_member(room: str, user: str) -> str:
    """SQL: the user (a parameter) is a member of the room (a column)."""
    members = Room.members.through._meta
    return (
        f"EXISTS (SELECT 1 FROM {_table(members)} x"
        f" WHERE x.{_column(members, 'room')} = {room}"
        f" AND x.{_column(members, 'user')} = {user})"
    )


def _visible_room() -> str:
    """SQL: room r has the slug (a parameter) and the user (a parameter) may see
    it: it is public, or they are a member (selectors.rooms_visible_to)."""
    room = Room._meta
    room_pk = connection.ops.quote_name(room.pk.column)
    return (
        f"r.{_column(room, 'slug')} = %s AND (NOT r.{_column(room, 'is_private')}"
        f" OR {_is_member(f'r.{room_pk}', '%s')})"
    )


@functools.cache
def room_visible_sql() -> str:
    """The room with a slug, if the user may see it, with every column of the
    model. Parameters: slug, user id (None for an anonymous user)."""
    room = Room._meta
    columns = ", ".join(f"r.{_column(room, f.name)}" for f in room.concrete_fields)
    return f"SELECT {columns} FROM {_table(room)} r WHERE {_visible_room()}"


@functools.cache
def message_page_sql(walk: str) -> str:
    """A page of one room's messages with their authors' usernames, if the user
    may see the room. Parameters: slug, user id, [the after/before id], limit.
    walk: "" (the newest), "after" or "before"."""
    quote = connection.ops.quote_name
    message, room = Message._meta, Room._meta
    user = get_user_model()._meta

    room_pk, message_id = quote(room.pk.column), _column(message, "id")
    order = {"": "DESC", "after": "ASC", "before": "DESC"}[walk]
    cursor = {
        "": "",
        "after": f"AND {message_id} > %s",
        "before": f"AND {message_id} < %s",
    }
    visible_room = f"SELECT {room_pk} FROM {_table(room)} r WHERE {_visible_room()}"
    fields = ", ".join(
        _column(message, name)
        for name in ("id", "author", "body", "created_at", "client_id")
    )
    # Walks the (room, id) index in `order` and stops at the limit, whatever the
    # room's size (test_statements).
    page = (
        f"SELECT {fields} FROM {_table(message)}"
        f" WHERE {_column(message, 'room')} = ({visible_room}) {cursor[walk]}"
        f" ORDER BY {message_id} {order} LIMIT %s"
    )
    author = _column(message, "author")
    return (
        f"SELECT m.{message_id}, u.{_column(user, get_user_model().USERNAME_FIELD)},"
        f" m.{_column(message, 'body')}, m.{_column(message, 'created_at')},"
        f" m.{_column(message, 'client_id')} FROM ({page}) m"
        f" INNER JOIN {_table(user)} u ON u.{quote(user.pk.column)} = m.{author}"
        f" ORDER BY m.{message_id} {order}"
    )


@functools.cache
def message_insert_sql() -> str:
    """PostgreSQL: store a message and bump its room's last_message_id in one
    statement, which in autocommit is its own transaction: one round trip
    instead of five or six (BEGIN, lock the room, [check membership], insert,
    update the room, COMMIT).

    Parameters: room id, author id, body, client_id, created_at. Returns one
    row, (message id, the room's previous last_message_id), or none when the
    room is gone or private and the author not a member. The room row is
    locked first (FOR UPDATE), so a room's messages commit in id order, as in
    services._message_insert_orm.
    """
    message, room = Message._meta, Room._meta
    room_pk, last = _column(room, "id"), _column(room, "last_message_id")
    columns = ", ".join(
        _column(message, name)
        for name in ("room", "author", "body", "client_id", "created_at")
    )
    return (
        f"WITH locked AS (SELECT {room_pk}, {last}, {_column(room, 'is_private')}"
        f" AS private FROM {_table(room)} WHERE {room_pk} = %(room)s FOR UPDATE),"
        f" allowed AS (SELECT {room_pk}, {last} FROM locked WHERE NOT private"
        f" OR {_is_member(f'locked.{room_pk}', '%(author)s')}),"
        f" inserted AS (INSERT INTO {_table(message)} ({columns})"
        f" SELECT {room_pk}, %(author)s, %(body)s, %(client_id)s, %(created_at)s"
        f" FROM allowed RETURNING {_column(message, 'id')} AS id),"
        f" bumped AS (UPDATE {_table(room)} SET {last} = inserted.id FROM inserted"
        f" WHERE {_table(room)}.{room_pk} = %(room)s)"
        f" SELECT inserted.id, allowed.{last} FROM inserted, allowed"
    )


@functools.cache
def created_at_from_db() -> Callable[[Any], datetime] | None:
    """What the database backend does to a created_at value the ORM reads (from
    SQLite's text to an aware datetime, say); None where that is nothing, as on
    PostgreSQL."""
    expression = Message._meta.get_field("created_at").get_col("m")
    converters = [
        *connection.ops.get_db_converters(expression),
        *expression.get_db_converters(connection),
    ]
    if not converters:
        return None

    def convert(value: Any) -> datetime:
        for converter in converters:
            value = converter(value, expression, connection)
        return value

    return convert
