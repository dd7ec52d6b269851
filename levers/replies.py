"""
Lever "drop_late_replies": a reply to a WebSocket that autobahn has already
closed is dropped instead of raised inside the consumer.

autobahn marks a connection it fails (invalid UTF-8, an oversized frame, a
ping timeout, the peer gone) closed at once, but Daphne hears of it a turn of
the loop later. A frame sent in between, a broadcast say, raises autobahn's
Disconnected inside the consumer's send() and kills the consumer before its
disconnect handler runs (django/channels#1820). Daphne already drops replies
for a connection it knows is gone; this drops them for one autobahn knows is.
"""

from daphne.ws_protocol import WebSocketProtocol

OPEN_STATES = (WebSocketProtocol.STATE_OPEN, WebSocketProtocol.STATE_CONNECTING)


class DropLateReplies:
    """A mixin for Daphne's Server."""

    async def handle_reply(self, protocol, message) -> None:
        if (
            message.get("type") in ("websocket.send", "websocket.close")
            and isinstance(protocol, WebSocketProtocol)
            and protocol.state not in OPEN_STATES
        ):
            return
        await super().handle_reply(protocol, message)
