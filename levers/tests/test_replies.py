"""
Lever "drop_late_replies" (levers/replies.py): a frame or a close for a
WebSocket that autobahn has already closed is dropped, and nothing else is.
"""

from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol

from levers.replies import DropLateReplies

from .stand_ins import RecordingDaphne, websocket


class Server(DropLateReplies, RecordingDaphne):
    pass


async def test_frames_for_a_socket_autobahn_closed_are_dropped():
    server = Server()
    for state in (WebSocketProtocol.STATE_CLOSED, WebSocketProtocol.STATE_CLOSING):
        for kind in ("websocket.send", "websocket.close"):
            await server.handle_reply(websocket(state), {"type": kind})
    assert server.handled == []


async def test_everything_else_goes_to_daphne():
    server = Server()
    await server.handle_reply(
        websocket(WebSocketProtocol.STATE_OPEN), {"type": "websocket.send"}
    )
    await server.handle_reply(
        websocket(WebSocketProtocol.STATE_CONNECTING), {"type": "websocket.accept"}
    )
    await server.handle_reply(
        WebRequest.__new__(WebRequest), {"type": "http.response.start"}
    )
    assert server.handled == [
        "websocket.send",
        "websocket.accept",
        "http.response.start",
    ]
