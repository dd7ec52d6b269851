"""
Stand-ins for testing the levers that are mixins of Daphne's Server
(levers/replies.py, levers/backlog.py) without a running Daphne.
"""

from daphne.ws_protocol import WebSocketProtocol


class RecordingDaphne:
    """Stands in for Daphne's Server: records the replies it would handle."""

    def __init__(self):
        self.handled = []

    async def handle_reply(self, protocol, message):
        self.handled.append(message["type"])


def websocket(state: int) -> WebSocketProtocol:
    """A Daphne WebSocket protocol in `state`, with no connection behind it."""
    protocol = WebSocketProtocol.__new__(WebSocketProtocol)
    protocol.state = state
    return protocol
