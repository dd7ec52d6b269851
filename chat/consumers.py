"""
The WebSocket side of the chat: parse a frame, call the chat core, send the
answer. Storage lives in services and selectors, the channel layer in events.
"""

import asyncio
import functools
import logging
import time

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from . import events, protocol, selectors, services
from .dispatching import dispatch_messages
from .errors import ChatError
from .middleware import AUTH_UNAVAILABLE
from .outages import database_call
from .presence import presence_join, presence_leave
from .protocol import CloseCode

logger = logging.getLogger(__name__)

UNAVAILABLE = ChatError(
    "unavailable",
    "The message could not be stored right now; send it again with the same client_id.",
    http_status=503,
)


class ChatConsumer(AsyncWebsocketConsumer):
    room = None  # set once the socket is in its room; None while refused
    subscription = None  # (slug, user id) of the groups joined, for disconnect()
    present = False  # announced in the room's presence
    gone = False  # the client went away before we heard of it

    async def connect(self) -> None:
        # Accept first: an error frame and a close code can only be sent on an
        # open socket, and the code tells the client whether to reconnect.
        await self.accept()
        user = self.scope["user"]
        if self.scope.get(AUTH_UNAVAILABLE):
            await self._refuse_unavailable()
            return
        if not user.is_authenticated:
            await self._refuse(
                CloseCode.NOT_AUTHENTICATED, "not_authenticated", "Log in to chat."
            )
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            room = await database_sync_to_async(database_call)(
                selectors.room_get, slug=slug, user=user
            )
        except DatabaseError as exc:
            logger.warning("socket for room %r refused: %r", slug, exc)
            await self._refuse_unavailable()
            return
        if room is None:  # or private, and the user is not a member
            await self._refuse(
                CloseCode.ROOM_NOT_FOUND, "room_not_found", "There is no such room."
            )
            return
        # Set before joining, so that disconnect() undoes a half-made join.
        self.subscription = (room.slug, user.pk)
        try:
            await events.socket_join(
                slug=room.slug, user_id=user.pk, channel_name=self.channel_name
            )
        except Exception as exc:  # the channel layer is down
            logger.warning("socket for room %r refused: %r", slug, exc)
            await self._refuse_unavailable()
            return

        self.room = room
        self.username = user.get_username()
        self.last_typing = 0.0
        await self._send_frame(
            {
                "type": "hello",
                "room": {"slug": room.slug, "title": room.title},
                "user": self.username,
                "last_id": room.last_message_id,
                "max_body_length": settings.CHAT_MESSAGE_MAX_LENGTH,
            }
        )
        await presence_join(
            slug=room.slug, channel_name=self.channel_name, username=self.username
        )
        self.present = True

    async def __call__(self, scope, receive, send) -> None:
        # AsyncConsumer.__call__, with a lighter loop than await_many_dispatch
        # around dispatch() (chat.dispatching).
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        try:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(
                self.channel_layer.receive, self.channel_name
            )
            await dispatch_messages([receive, self.channel_receive], self.dispatch)
        finally:
            channel_name = getattr(self, "channel_name", None)
            if channel_name is not None:
                try:
                    await events.socket_channel_release(channel_name=channel_name)
                except Exception as exc:  # the channel layer is down
                    logger.warning("releasing channel %s failed: %r", channel_name, exc)

    async def disconnect(self, code: int) -> None:
        if self.subscription is None:
            return
        # Shielded: when thousands of clients drop at once the leaves queue up,
        # and one that Daphne cancels (--application-close-timeout) still ends,
        # instead of leaving its subscriptions and presence entry behind.
        await asyncio.shield(self._leave(*self.subscription))

    async def _leave(self, slug: str, user_id: int) -> None:
        try:
            await events.socket_leave(
                slug=slug, user_id=user_id, channel_name=self.channel_name
            )
        except Exception as exc:  # the channel layer is down; nothing to undo
            logger.warning("leaving room %s failed: %r", slug, exc)
        if self.present:
            await presence_leave(slug=slug, channel_name=self.channel_name)

    async def dispatch(self, message) -> None:
        # Channels runs close_old_connections() in its sync thread before every
        # handler. Every database call here goes through database_sync_to_async,
        # which already does that on both sides, so skip the per-event thread hop
        # that would otherwise cost each broadcast recipient.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- Client frames -------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.room is None:
            return  # refused socket, closing
        if text_data is None:
            await self._send_error(
                ChatError("binary_not_supported", "Send JSON in text frames.")
            )
            return
        try:
            frame = protocol.parse_client_frame(
                text_data, max_length=settings.CHAT_MAX_FRAME_LENGTH
            )
        except ChatError as error:
            await self._send_error(error)
            return
        if frame.type == "message":
            await self._on_message(frame.data)
        elif frame.type == "resume":
            await self._on_resume(frame.data)
        else:
            await self._on_typing()

    async def _on_message(self, data: dict) -> None:
        client_id = data.get("client_id")
        echo_id = client_id if services.client_id_is_valid(client_id) else None
        try:
            message, created = await database_sync_to_async(database_call)(
                services.message_create,
                room=self.room,
                author=self.scope["user"],
                body=data.get("body"),
                client_id=client_id,
            )
        except ChatError as error:
            await self._send_error(error, client_id=echo_id)
            if error.code == "room_not_found":  # deleted while we were in it
                await self._close(CloseCode.ROOM_NOT_FOUND)
            return
        except DatabaseError:
            logger.warning("message from %s not stored", self.username, exc_info=True)
            await self._send_error(UNAVAILABLE, client_id=echo_id)
            return
        if not created:
            # A retry: the room already has it; answer the sender alone.
            await self._send_frame(protocol.message_frame(message))

    async def _on_resume(self, data: dict) -> None:
        try:
            after = protocol.parse_resume_after(data.get("after"))
        except ChatError as error:
            await self._send_error(error)
            return
        limit = settings.CHAT_RESUME_MAX_MESSAGES
        try:
            page = await database_sync_to_async(database_call)(
                selectors.message_list, room=self.room, after=after, limit=limit
            )
        except DatabaseError:
            logger.warning("resume for %s failed", self.username, exc_info=True)
            await self._send_error(
                ChatError("resume_failed", "History is unavailable; resume again.")
            )
            return
        for message in page.messages:
            await self._send_frame(protocol.message_frame(message))
        await self._send_frame(
            {
                "type": "resume_done",
                "after": after,
                "last_id": page.messages[-1].id if page.messages else after,
                "count": len(page.messages),
                "has_more": page.has_more,
            }
        )

    async def _on_typing(self) -> None:
        now = time.monotonic()
        if now - self.last_typing < settings.CHAT_TYPING_INTERVAL:
            return
        self.last_typing = now
        try:
            await events.user_typing(slug=self.room.slug, username=self.username)
        except Exception as exc:  # a lost typing notice is harmless
            logger.warning("typing notice in %s failed: %r", self.room.slug, exc)

    # --- Channel layer events (see chat.events) ------------------------------

    async def chat_message(self, event) -> None:
        # Events carry their frame encoded once by the sender: forward as is.
        await self.send(text_data=event["text"])

    chat_presence = chat_typing = chat_message

    async def chat_close(self, event) -> None:
        """The user logged out, was deactivated, or left a private room."""
        if self.room is None:  # already closing
            return
        session_key = event.get("session_key")
        if session_key and session_key != self.scope["session"].session_key:
            return
        if event.get("room") not in (None, self.room.slug):
            return
        self.room = None  # nothing the client sends from now on is served
        code = event["code"]
        close_code = (
            CloseCode.ROOM_NOT_FOUND
            if code == "room_not_found"
            else CloseCode.NOT_AUTHENTICATED
        )
        await self._refuse(close_code, code, event["detail"])

    # --- Helpers -------------------------------------------------------------

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        # A broadcast can race its recipient's disconnect: the socket is closed
        # before Daphne tells the consumer, and the server refuses the frame
        # (autobahn's Disconnected under Daphne). Nothing is lost that matters:
        # the message is stored and a client that returns resumes it.
        if self.gone:
            return
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except Exception as exc:
            self.gone = True
            logger.debug("frame for a closed socket dropped: %r", exc)

    async def _send_frame(self, frame: dict) -> None:
        await self.send(text_data=protocol.encode(frame))

    async def _send_error(self, error: ChatError, *, client_id: str | None = None):
        await self._send_frame(protocol.error_frame(error, client_id=client_id))

    async def _refuse(self, code: CloseCode, error_code: str, detail: str) -> None:
        await self._send_error(ChatError(error_code, detail))
        await self._close(code)

    async def _close(self, code: CloseCode) -> None:
        if self.gone:
            return
        # A plain int: autobahn, under Daphne, refuses an IntEnum member.
        await self.close(code=int(code))

    async def _refuse_unavailable(self) -> None:
        await self._refuse(
            CloseCode.UNAVAILABLE, "unavailable", "The chat is unavailable; retrying."
        )
