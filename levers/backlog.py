"""
Lever "send_backlog": what waits to be sent to one WebSocket is bounded; a
client that stops reading is closed (4408) instead of growing Daphne for ever.

Twisted queues whatever a socket does not take, without bound, and Daphne
hands every frame an application sends to Twisted. A client that stops reading
while the server keeps sending (a busy room, or its own resume requests) makes
Daphne hold all of it: hundreds of megabytes from one client. Before each
frame, this looks at what the connection has queued; past
DAPHNE_MAX_SEND_BACKLOG bytes (1 MiB by default) the frame is dropped, and the
connection is sent a close frame (4408, "too slow") and dropped by autobahn if
the client does not answer within its close handshake timeout (1 s). From
then on, nothing more is queued for it.

It reads Twisted's private write buffers (as levers.transport does):
requirements.txt pins Twisted, and levers/tests/test_backlog.py holds it to
the behaviour above. A transport it does not know (TLS inside Daphne) is not
bounded.
"""

import logging
import os

from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import tcp

logger = logging.getLogger(__name__)

TOO_SLOW = 4408
DEFAULT_LIMIT = 1024 * 1024  # bytes


def send_backlog_limit() -> int:
    return int(os.environ.get("DAPHNE_MAX_SEND_BACKLOG", DEFAULT_LIMIT))


def queued_bytes(transport) -> int:
    """Bytes a Twisted TCP or UNIX transport holds that the kernel has not
    taken yet; 0 for a transport of another kind."""
    if not isinstance(transport, tcp.Connection):  # UNIX connections are too
        return 0
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class BoundedSendBacklog:
    """A mixin for Daphne's Server."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.send_backlog_limit = send_backlog_limit()

    async def handle_reply(self, protocol, message) -> None:
        if (
            message.get("type") == "websocket.send"
            and isinstance(protocol, WebSocketProtocol)
            and protocol.state == WebSocketProtocol.STATE_OPEN
            and queued_bytes(protocol.transport) > self.send_backlog_limit
        ):
            logger.warning(
                "closing WebSocket %s: over %d bytes wait to be sent to it",
                protocol.client_addr,
                self.send_backlog_limit,
            )
            protocol.sendClose(code=TOO_SLOW, reason="too slow: stopped reading")
            return
        await super().handle_reply(protocol, message)
