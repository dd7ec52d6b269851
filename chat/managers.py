"""
Message.objects.create_next: a message stored as the newest of its room.

The one place the chat writes SQL by hand. Storing a message takes, with the
ORM, a transaction of five round trips to the database (BEGIN, lock the room,
insert, move the room's last message on, COMMIT; one more to check a private
room's membership), and a Daphne process makes its database calls one at a
time: that thread, not the event loop, is what limits how many messages a
process stores a second. On PostgreSQL one statement does the same in one
round trip, under the same lock; `make bench` measures both in every run
(its rooms scenario, "ORM writes"), and CHAT_MESSAGE_WRITE = "orm" runs the
ORM's on PostgreSQL too. Other databases always run the ORM's, and
chat/tests/test_managers.py holds the two to the same results.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections, models, transaction
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Message, Room


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
        connection = connections[self.db]
        if connection.vendor == "postgresql" and settings.CHAT_MESSAGE_WRITE != "orm":
            return self.create_next_in_one_statement(
                room=room, author=author, body=body, client_id=client_id
            )
        return self.create_next_with_the_orm(
            room=room, author=author, body=body, client_id=client_id
        )

    def create_next_with_the_orm(
        self, *, room: Room, author: AbstractBaseUser, body: str, client_id: str
    ) -> tuple[Message, int | None]:
        room_model = self.model._meta.get_field("room").related_model
        with transaction.atomic(using=self.db):
            prev_id, is_private = (
                room_model.objects.using(self.db)
                .select_for_update()
                .values_list("last_message_id", "is_private")
                .get(pk=room.pk)
            )
            # Checked here, not only when the socket opened: a member may have
            # been removed since.
            if is_private and not room.members.filter(pk=author.pk).exists():
                raise room_model.DoesNotExist("not a member of this private room")
            message = self.create(
                room=room, author=author, body=body, client_id=client_id
            )
            room_model.objects.using(self.db).filter(pk=room.pk).update(
                last_message_id=message.id
            )
        return message, prev_id

    def create_next_in_one_statement(
        self, *, room: Room, author: AbstractBaseUser, body: str, client_id: str
    ) -> tuple[Message, int | None]:
        """create_next_with_the_orm as one PostgreSQL statement."""
        connection = connections[self.db]
        created_at = timezone.now()
        params = {
            "room": room.pk,
            "author": author.pk,
            "body": body,
            "client_id": client_id,
            "created_at": created_at,
        }
        # Outside any transaction the statement is one: no BEGIN and COMMIT
        # round trips. Inside a caller's, a savepoint keeps a duplicate
        # client_id from breaking that transaction.
        own = (
            transaction.atomic(using=self.db)
            if not connection.get_autocommit()
            else nullcontext()
        )
        with own, connection.cursor() as cursor:
            cursor.execute(message_insert_sql(self.model), params)
            row = cursor.fetchone()
        room_model = self.model._meta.get_field("room").related_model
        if row is None:  # the room is gone, or private and `author` not a member
            raise room_model.DoesNotExist("no such room for this author")
        message_id, prev_id = row
        message = self.model(
            id=message_id,
            room=room,
            author=author,
            body=body,
            client_id=client_id,
            created_at=created_at,
        )
        message._state.adding, message._state.db = False, self.db
        return message, prev_id


@functools.cache
def message_insert_sql(message_model: type[models.Model]) -> str:
    """Lock the room, check a private room's membership, insert the message and
    move the room's last message on, in data-modifying CTEs. Parameters: room,
    author, body, client_id, created_at. One row, (message id, the room's
    previous last_message_id), or none. Written from the models' table and
    column names."""
    message = message_model._meta
    room = message.get_field("room").related_model._meta
    members = room.get_field("members").remote_field.through._meta

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
        f" FROM allowed RETURNING {column(message, 'id')} AS id),"
        f" bumped AS (UPDATE {room_table} SET {last} = inserted.id FROM inserted"
        f" WHERE {room_table}.{room_pk} = %(room)s)"
        f" SELECT inserted.id, allowed.{last} FROM inserted, allowed"
    )
