"""
The WebSocket side of the chat: one ChatConsumer per socket, as in the Channels
tutorial. It parses a frame, calls the chat core (selectors for reads, through
database_sync_to_async; services for writes, through chat.writes, which stores
the messages that sockets send meanwhile together) and sends the answer;
group membership and broadcasts go through chat.events, the one module that
talks to the channel layer. The wire protocol is docs/protocol.md.
"""

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from . import events, protocol, selectors, services
from .access import access_recheck_soon, access_unwatch, access_watch
from .errors import ChatError
from .middleware import AUTH_UNAVAILABLE
from .outages import database_call
from .presence import (
    presence_join,
    presence_leave,
    presence_page,
    typing_allowed,
    user_socket_close,
    user_socket_open,
)
from .protocol import CloseCode
from .ratelimit import presence_rate_check, resume_rate_check
from .writes import message_store

logger = logging.getLogger(__name__)

UNAVAILABLE = ChatError(
    "unavailable",
    "The message could not be stored right now; send it again with the same client_id.",
    http_status=503,
)


class ChatConsumer(AsyncWebsocketConsumer):
    room = None  # the room, once joined; None while refused or closing
    counted = False  # among its user's open sockets, to uncount on disconnect
    joined = False  # in the room's groups, to leave on disconnect
    present = False  # announced in the room's presence

    async def connect(self) -> None:
        # Accept first: an error frame and a close code can only be sent on an
        # open socket, and the code tells the client whether to reconnect.
        await self.accept()
        self.user = self.scope["user"]
        if self.scope.get(AUTH_UNAVAILABLE):
            await self.refuse_unavailable()
            return
        if not self.user.is_authenticated:
            await self.refuse(
                CloseCode.NOT_AUTHENTICATED, "not_authenticated", "Log in to chat."
            )
            return
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            room = await database_sync_to_async(database_call)(
                selectors.room_get, slug=self.slug, user=self.user
            )
        except DatabaseError as exc:
            logger.warning("socket for room %r refused: %r", self.slug, exc)
            await self.refuse_unavailable()
            return
        if room is None:  # or private, and the user is not a member
            await self.refuse(
                CloseCode.ROOM_NOT_FOUND, "room_not_found", "There is no such room."
            )
            return
        self.counted = True  # before counting, so that disconnect undoes it
        sockets = await user_socket_open(
            user_id=self.user.pk, channel_name=self.channel_name
        )
        limit = settings.CHAT_MAX_SOCKETS_PER_USER
        if limit and sockets is not None and sockets > limit:
            self.counted = False  # a refused socket takes no place
            await user_socket_close(
                user_id=self.user.pk, channel_name=self.channel_name
            )
            await self.refuse(
                CloseCode.TOO_MANY_SOCKETS,
                "too_many_sockets",
                f"You have more than {limit} chat tabs open: close some, then "
                "reload this one.",
            )
            return
        self.joined = True  # before joining, so that disconnect undoes half a join
        try:
            await events.socket_join(
                slug=self.slug, user_id=self.user.pk, channel_name=self.channel_name
            )
        except Exception as exc:  # the channel layer is down
            logger.warning("socket for room %r refused: %r", self.slug, exc)
            await self.refuse_unavailable()
            return
        self.room = room
        self.last_typing = 0.0
        access_watch(
            channel_name=self.channel_name,
            grant=selectors.SocketGrant(
                user_id=self.user.pk,
                session_key=self.scope["session"].session_key,
                session_hash=self.user.get_session_auth_hash(),
                room_id=room.pk,
            ),
            revoke=self.access_revoked,
        )
        await self.send_frame(
            {
                "type": "hello",
                "room": {"slug": room.slug, "title": room.title},
                "user": self.user.get_username(),
                "last_id": room.last_message_id,
                "max_body_length": settings.CHAT_MESSAGE_MAX_LENGTH,
            }
        )
        self.present = True  # before joining, so that disconnect undoes it
        await presence_join(
            slug=self.slug,
            channel_name=self.channel_name,
            username=self.user.get_username(),
        )
        await self.send_presence()

    async def disconnect(self, code: int) -> None:
        access_unwatch(channel_name=self.channel_name)
        if self.counted:
            # Shielded: a consumer that Daphne cancels mid-way (it outlived
            # --application-close-timeout) still leaves its groups and presence.
            await asyncio.shield(self.leave())

    async def leave(self) -> None:
        if self.joined:
            try:
                await events.socket_leave(
                    slug=self.slug, user_id=self.user.pk, channel_name=self.channel_name
                )
            except Exception as exc:  # the channel layer is down; nothing to undo
                logger.warning("leaving room %s failed: %r", self.slug, exc)
        if self.present:
            await presence_leave(slug=self.slug, channel_name=self.channel_name)
        await user_socket_close(user_id=self.user.pk, channel_name=self.channel_name)

    # --- Frames from the client ------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.room is None:
            return  # refused, closing
        if text_data is None:
            await self.send_error(
                ChatError("binary_not_supported", "Send JSON in text frames.")
            )
            return
        try:
            frame = protocol.parse_client_frame(
                text_data, max_length=settings.CHAT_MAX_FRAME_LENGTH
            )
        except ChatError as error:
            await self.send_error(error)
            return
        if frame.type == "message":
            await self.receive_message(frame.data)
        elif frame.type == "resume":
            await self.receive_resume(frame.data)
        elif frame.type == "presence":
            await self.receive_presence(frame.data)
        else:
            await self.receive_typing()

    async def receive_message(self, data: dict) -> None:
        client_id = data.get("client_id")
        echo_id = client_id if services.client_id_is_valid(client_id) else None
        try:
            message, created = await message_store(
                services.MessageRequest(
                    room=self.room,
                    author=self.user,
                    body=data.get("body"),
                    client_id=client_id,
                )
            )
        except ChatError as error:
            await self.send_error(error, client_id=echo_id)
            if error.code == "room_not_found":  # deleted, or we were removed
                await self.close(code=CloseCode.ROOM_NOT_FOUND)
            return
        except DatabaseError:
            logger.warning("message from %s not stored", self.user, exc_info=True)
            await self.send_error(UNAVAILABLE, client_id=echo_id)
            return
        if not created:
            # A retry: the room already has it; answer the sender alone.
            await self.send_frame(protocol.message_frame(message))

    async def receive_resume(self, data: dict) -> None:
        try:
            after = protocol.parse_resume_after(data.get("after"))
            resume_rate_check(channel_name=self.channel_name)
        except ChatError as error:
            await self.send_error(error)
            return
        try:
            page = await database_sync_to_async(database_call)(
                selectors.message_list,
                room=self.room,
                after=after,
                limit=settings.CHAT_RESUME_MAX_MESSAGES,
            )
        except DatabaseError:
            logger.warning("resume for %s failed", self.user, exc_info=True)
            await self.send_error(
                ChatError("resume_failed", "History is unavailable; resume again.")
            )
            return
        for message in page.messages:
            await self.send_frame(protocol.message_frame(message))
        await self.send_frame(
            {
                "type": "resume_done",
                "after": after,
                "last_id": page.messages[-1].id if page.messages else after,
                "count": len(page.messages),
                "has_more": page.has_more,
            }
        )

    async def receive_presence(self, data: dict) -> None:
        """The client asks for the next page of the roster."""
        try:
            after = protocol.parse_presence_after(data.get("after"))
            presence_rate_check(channel_name=self.channel_name)
        except ChatError as error:
            await self.send_error(error)
            return
        if not await self.send_presence(after=after):
            await self.send_error(
                ChatError("presence_failed", "Presence is unavailable; ask again.")
            )

    async def receive_typing(self) -> None:
        now = time.monotonic()
        if now - self.last_typing < settings.CHAT_TYPING_INTERVAL:
            return
        self.last_typing = now
        # The same interval per user and room, over all of the user's sockets.
        if not await typing_allowed(slug=self.room.slug, user_id=self.user.pk):
            return
        try:
            await events.user_typing(
                slug=self.room.slug, username=self.user.get_username()
            )
        except Exception as exc:  # a lost typing notice is harmless
            logger.warning("typing notice in %s failed: %r", self.room.slug, exc)

    # --- Events from the channel layer (chat.events) --------------------------

    async def chat_message(self, event: dict) -> None:
        if self.room is None:  # refused, or access revoked: closing
            return
        # Events carry their frame encoded once by the sender: forward as is.
        await self.send(text_data=event["text"])

    chat_presence = chat_typing = chat_message

    async def chat_presence_resync(self, event: dict) -> None:
        """Changes may have been lost (Redis was away): send the roster afresh."""
        if self.room is not None:
            await self.send_presence(resync=False)

    async def chat_close(self, event: dict) -> None:
        """The user logged out of the session this socket was opened with."""
        if self.room is None:  # already closing
            return
        if event["session_key"] != self.scope["session"].session_key:
            return
        self.room = None  # nothing the client sends from now on is served
        await self.refuse(CloseCode.NOT_AUTHENTICATED, event["code"], event["detail"])

    async def chat_access(self, event: dict) -> None:
        """The user's account or memberships changed: recheck (chat.access)."""
        access_recheck_soon(channel_name=self.channel_name)

    async def access_revoked(self, reason: str) -> None:
        """chat.access found that this socket's grant no longer holds."""
        if self.room is None:  # already closing
            return
        self.room = None
        if reason == selectors.ROOM_NOT_FOUND:
            await self.refuse(
                CloseCode.ROOM_NOT_FOUND,
                reason,
                "You no longer have access to this room.",
            )
        else:
            await self.refuse(
                CloseCode.NOT_AUTHENTICATED, reason, "Your session has ended."
            )

    # --- Helpers -----------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=protocol.encode(frame))

    async def send_presence(
        self, *, after: str | None = None, resync: bool = True
    ) -> bool:
        """Send a page of the room's roster; False if it could not be read."""
        page = await presence_page(slug=self.slug, after=after, resync=resync)
        if page is None:
            return False
        await self.send_frame(protocol.presence_frame(page))
        return True

    async def send_error(self, error: ChatError, *, client_id: str | None = None):
        await self.send_frame(protocol.error_frame(error, client_id=client_id))

    async def refuse(self, code: int, error_code: str, detail: str) -> None:
        await self.send_error(ChatError(error_code, detail))
        await self.close(code=code)

    async def refuse_unavailable(self) -> None:
        await self.refuse(
            CloseCode.UNAVAILABLE, "unavailable", "The chat is unavailable; retrying."
        )
