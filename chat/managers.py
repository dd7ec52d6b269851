"""
Message.objects.create_next and create_next_many: messages stored as the newest
of their rooms.

The one place the chat writes SQL by hand. Storing a message takes, with the
ORM, a transaction of five round trips to the database (BEGIN, lock the room,
insert, move the room's last message on, COMMIT; one more to check a private
room's membership), and a Daphne process makes its database calls one at a
time: that thread, not the event loop, is what limits how many messages a
process stores a second. On PostgreSQL one statement does the same in one
round trip, under the same lock, and create_next_many sends a batch of them in
one transaction and one round trip (psycopg's pipeline), so that PostgreSQL
flushes one commit for many messages (chat.writes gathers them). `make bench`
measures both ways in every run (its rooms scenario, "ORM writes"), and
CHAT_MESSAGE_WRITE = "orm" runs the ORM's on PostgreSQL too. Other databases
always run the ORM's, and chat/tests/test_managers.py holds the two to the same
results.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connections, models, transaction

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Message, Room


class Stored(NamedTuple):
    """What became of one message given to create_next_many."""

    message: Message | None  # stored; None when it was not
    prev_id: int | None = None  # the id of the room's message before it
    # Not stored because its author already used its client_id; otherwise not
    # stored because the room is gone, or private and the author not a member.
    duplicate: bool = False


class MessageManager(models.Manager):
    def create_next(
        self, *, room: Room, author: AbstractBaseUser, body: str, client_id: str
    ) -> tuple[Message, int | None]:
        """Store a message as the newest of `room`; return it and the id of the
        room's message before it (None for its first).

        The room's row is locked first, so a room's messages commit in id order
        and each knows the one before it. Raises Room.DoesNotExist when the room
        is gone, or private and `author` not a member; IntegrityError when
        `author` already used `client_id`.
        """
        draft = self.model(room=room, author=author, body=body, client_id=client_id)
        (stored,) = self.create_next_many([draft])
        if stored.duplicate:
            raise IntegrityError(f"{author} already used client_id {client_id!r}")
        if stored.message is None:
            raise room.DoesNotExist("no such room for this author")
        return stored.message, stored.prev_id

    def create_next_many(self, drafts: Sequence[Message]) -> list[Stored]:
        """Store unsaved messages, each as the newest of its room, in the order
        given within each room; one Stored for each, in the same order. A
        message that cannot be stored (a used client_id, a room gone or closed
        to its author) does not keep the others from being stored."""
        if not drafts:
            return []
        connection = connections[self.db]
        if connection.vendor == "postgresql" and settings.CHAT_MESSAGE_WRITE != "orm":
            return self.create_next_many_in_statements(drafts)
        return [self.create_next_with_the_orm(draft) for draft in drafts]

    def create_next_with_the_orm(self, draft: Message) -> Stored:
        room_model = self.model._meta.get_field("room").related_model
        try:
            with transaction.atomic(using=self.db):
                prev_id, is_private = (
                    room_model.objects.using(self.db)
                    .select_for_update()
                    .values_list("last_message_id", "is_private")
                    .get(pk=draft.room_id)
                )
                # Checked here, not only when the socket opened: a member may
                # have been removed since.
                if (
                    is_private
                    and not draft.room.members.filter(pk=draft.author_id).exists()
                ):
                    return Stored(None)
                draft.save(using=self.db, force_insert=True)
                room_model.objects.using(self.db).filter(pk=draft.room_id).update(
                    last_message_id=draft.id
                )
        except room_model.DoesNotExist:
            return Stored(None)
        except IntegrityError:
            if not self._client_id_used(draft):
                raise
            return Stored(None, duplicate=True)
        return Stored(draft, prev_id)

    def _client_id_used(self, draft: Message) -> bool:
        return (
            self.using(self.db)
            .filter(author_id=draft.author_id, client_id=draft.client_id)
            .exists()
        )

    def create_next_many_in_statements(self, drafts: Sequence[Message]) -> list[Stored]:
        """create_next_with_the_orm for each draft as one PostgreSQL statement;
        several in one transaction and one round trip."""
        connection = connections[self.db]
        # Rooms locked in the order of their ids, so that two processes' batches
        # never wait for each other's locks (a deadlock); one room's messages
        # keep their order (the sort is stable).
        order = sorted(range(len(drafts)), key=lambda n: drafts[n].room_id)
        params = [
            {
                "room": drafts[n].room_id,
                "author": drafts[n].author_id,
                "body": drafts[n].body,
                "client_id": drafts[n].client_id,
                "created_at": drafts[n].created_at,
            }
            for n in order
        ]
        sql = message_insert_sql(self.model)
        with connection.cursor() as cursor:
            if len(params) == 1:
                # Alone it is one statement: outside a transaction, no BEGIN and
                # COMMIT round trips.
                cursor.execute(sql, params[0])
                rows = [cursor.fetchone()]
            else:
                with transaction.atomic(using=self.db):
                    rows = _each_row(cursor.cursor, sql, params)
        results: list[Stored] = [Stored(None)] * len(drafts)
        for n, row in zip(order, rows, strict=True):
            if row is None:  # the room is gone, or private and not the author's
                continue
            message_id, prev_id = row
            if message_id is None:
                results[n] = Stored(None, duplicate=True)
                continue
            draft = drafts[n]
            draft.id = message_id
            draft._state.adding, draft._state.db = False, self.db
            results[n] = Stored(draft, prev_id)
        return results


def _each_row(cursor, sql: str, params: list[dict]) -> list[tuple | None]:
    """Run `sql` once for each of `params` in one round trip (psycopg's
    executemany pipelines them); the first row of each, or None."""
    cursor.executemany(sql, params, returning=True)
    rows = []
    while True:
        rows.append(cursor.fetchone())
        if not cursor.nextset():
            return rows


@functools.cache
def message_insert_sql(message_model: type[models.Model]) -> str:
    """Lock the room, check a private room's membership, insert the message and
    move the room's last message on, in data-modifying CTEs. Parameters: room,
    author, body, client_id, created_at. One row, (message id, the room's
    previous last_message_id); (None, ...) when the author already used the
    client_id; none when the room is gone or closed to the author. Written from
    the models' table and column names."""
    message = message_model._meta
    room = message.get_field("room").related_model._meta
    members = room.get_field("members").remote_field.through._meta
    (unique_client_id,) = [
        constraint.name
        for constraint in message.constraints
        if tuple(getattr(constraint, "fields", ())) == ("author", "client_id")
    ]

    def quote(name: str) -> str:  # PostgreSQL's quoting of names
        return f'"{name}"'

    def column(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    room_table, room_pk = quote(room.db_table), column(room, "id")
    last = column(room, "last_message_id")
    columns = ", ".join(
        column(message, name)
        for name in ("room", "author", "body", "client_id", "created_at")
    )
    is_member = (
        f"EXISTS (SELECT 1 FROM {quote(members.db_table)} x"
        f" WHERE x.{column(members, 'room')} = locked.{room_pk}"
        f" AND x.{column(members, 'user')} = %(author)s)"
    )
    return (
        f"WITH locked AS (SELECT {room_pk}, {last}, {column(room, 'is_private')}"
        f" AS private FROM {room_table} WHERE {room_pk} = %(room)s FOR UPDATE),"
        f" allowed AS (SELECT {room_pk}, {last} FROM locked"
        f" WHERE NOT private OR {is_member}),"
        f" inserted AS (INSERT INTO {quote(message.db_table)} ({columns})"
        f" SELECT {room_pk}, %(author)s, %(body)s, %(client_id)s, %(created_at)s"
        f" FROM allowed ON CONFLICT ON CONSTRAINT {quote(unique_client_id)}"
        f" DO NOTHING RETURNING {column(message, 'id')} AS id),"
        f" bumped AS (UPDATE {room_table} SET {last} = inserted.id FROM inserted"
        f" WHERE {room_table}.{room_pk} = %(room)s)"
        f" SELECT inserted.id, allowed.{last} FROM allowed LEFT JOIN inserted ON true"
    )
