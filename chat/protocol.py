"""
The chat's wire format (docs/protocol.md): what a client may send over the
WebSocket, and the frames the server sends over the WebSocket and the JSON API.
"""

import json
from dataclasses import dataclass
from typing import Any

from .errors import ChatError
from .models import Message
from .presence_store import PresencePage

CLIENT_FRAME_TYPES = frozenset({"message", "presence", "resume", "typing"})
# The longest user name a roster page may start after (Django's username).
MAX_USERNAME_LENGTH = 150


class CloseCode:
    """WebSocket close codes the server uses after refusing a socket. Daphne
    (autobahn) sends only 1000 and 3000-4999 from an application, so every
    code of ours is in the private 4000 range. Plain ints: autobahn refuses
    anything else, an IntEnum member included."""

    NOT_AUTHENTICATED = 4401
    ROOM_NOT_FOUND = 4404
    # Final: the user has CHAT_MAX_SOCKETS_PER_USER sockets open already.
    TOO_MANY_SOCKETS = 4429
    # Transient: the database or the channel layer is down; reconnect later.
    UNAVAILABLE = 4503


@dataclass(frozen=True)
class ClientFrame:
    type: str
    data: dict[str, Any]


def parse_client_frame(text: str, *, max_length: int) -> ClientFrame:
    """Decode one text frame from a client, or raise ChatError saying what is wrong."""
    if len(text) > max_length:
        raise ChatError(
            "frame_too_large", f"A frame can be at most {max_length} characters."
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ChatError("invalid_json", "A frame must be a JSON object.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ChatError(
            "invalid_frame", 'A frame must be a JSON object with a string "type".'
        )
    frame_type = data["type"]
    if frame_type not in CLIENT_FRAME_TYPES:
        known = ", ".join(sorted(CLIENT_FRAME_TYPES))
        raise ChatError(
            "unknown_type", f"Unknown frame type {frame_type[:40]!r}; use {known}."
        )
    return ClientFrame(type=frame_type, data=data)


def parse_resume_after(value: Any) -> int:
    # bool is an int subclass; true/false are not message ids.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChatError(
            "invalid_after", '"after" must be a message id: an integer of 0 or more.'
        )
    return value


def parse_presence_after(value: Any) -> str | None:
    if value is None or (
        isinstance(value, str)
        and 0 < len(value) <= MAX_USERNAME_LENGTH
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)  # no lone surrogate
    ):
        return value
    raise ChatError(
        "invalid_after", '"after" must be a user name from the last roster page.'
    )


def presence_frame(page: PresencePage) -> dict[str, Any]:
    """A page of a room's roster (docs/protocol.md, `presence`)."""
    return {
        "type": "presence",
        "users": page.users,
        "after": page.after,
        "next": page.next,
        "count": page.count,
        "version": page.version,
    }


def message_frame(message: Message) -> dict[str, Any]:
    """A stored message as clients see it (live broadcasts add "prev_id")."""
    return {
        "type": "message",
        "id": message.id,
        "room": message.room.slug,
        "author": message.author.get_username(),
        "body": message.body,
        "created_at": message.created_at.isoformat(),
        "client_id": message.client_id,
    }


def error_frame(error: ChatError, *, client_id: str | None = None) -> dict[str, Any]:
    frame = {"type": "error", **error.as_dict()}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
