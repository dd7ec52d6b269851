from django.conf import settings
from django.db import models
from django.utils import timezone

from .managers import MessageManager


class Room(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # A private room is seen, read, joined and posted to by its members only;
    # to everyone else it does not exist (404, close 4404).
    is_private = models.BooleanField(
        "private", default=False, help_text="Only members can see and join it."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="chat_rooms"
    )
    # The newest message's id. Writers lock the room row to read and bump it, so
    # a room's messages commit in id order and each broadcast can name the
    # message before it (see docs/protocol.md, prev_id).
    last_message_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    # No single-column indexes on the foreign keys: the (room, id) index and the
    # (author, client_id) constraint begin with them and serve the same lookups.
    # A room_id index of its own also let PostgreSQL read a big room whole and
    # sort it for a history page (chat/tests/test_history_plan.py).
    room = models.ForeignKey(
        Room, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_messages",
        db_index=False,
    )
    body = models.TextField()
    # Chosen by the client, unique per message: a retried send finds the
    # message it already stored instead of storing it twice.
    client_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MessageManager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["author", "client_id"], name="chat_message_author_client_id"
            ),
        ]
        indexes = [
            # History pages walk one room's messages by id in both directions.
            models.Index(fields=["room", "id"], name="chat_message_room_id"),
        ]

    def __str__(self) -> str:
        return f"{self.author} in {self.room}: {self.body[:50]}"
