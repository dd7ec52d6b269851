"""
Lever "send_backlog" (levers/backlog.py): a frame for a socket whose queued
bytes are past the limit is dropped and the socket is closed with 4408; every
other reply goes to Daphne. queued_bytes reads a real Twisted connection.
"""

import socket

import pytest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import tcp

from levers.backlog import TOO_SLOW, BoundedSendBacklog, queued_bytes

from .stand_ins import RecordingDaphne, websocket

LIMIT = 1000


class Server(BoundedSendBacklog, RecordingDaphne):
    pass


class Transport(tcp.Server):
    """A Twisted TCP server transport holding `queued` bytes, never connected."""

    def __init__(self, queued: int):
        self.dataBuffer, self.offset = b"", 0
        self._tempDataBuffer, self._tempDataLen = [b"x" * queued], queued


def open_websocket(queued: int) -> WebSocketProtocol:
    """An open socket whose transport holds `queued` bytes; records its close."""
    protocol = websocket(WebSocketProtocol.STATE_OPEN)
    protocol.transport = Transport(queued)
    protocol.client_addr = ["127.0.0.1", 5000]
    protocol.closed_with = []
    protocol.sendClose = lambda code, reason: protocol.closed_with.append(code)
    return protocol


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("DAPHNE_MAX_SEND_BACKLOG", str(LIMIT))
    return Server()


async def test_a_frame_past_the_limit_is_dropped_and_the_socket_closed(server):
    slow = open_websocket(queued=LIMIT + 1)
    await server.handle_reply(slow, {"type": "websocket.send", "text": "more"})
    assert server.handled == []
    assert slow.closed_with == [TOO_SLOW]


async def test_every_other_reply_goes_to_daphne(server):
    reading = open_websocket(queued=LIMIT)
    await server.handle_reply(reading, {"type": "websocket.send", "text": "hi"})
    await server.handle_reply(open_websocket(LIMIT + 1), {"type": "websocket.close"})
    assert server.handled == ["websocket.send", "websocket.close"]
    assert reading.closed_with == []


def test_queued_bytes_of_a_real_connection():
    """What Twisted holds after a write the kernel did not take whole."""
    left, right = socket.socketpair()
    left.setblocking(False)
    try:
        connection = tcp.Connection(left, protocol=None)
        connection.connected = True
        # No reactor here: the test takes the loop's part (doWrite below).
        connection.startWriting = connection.stopWriting = lambda: None
        connection.write(b"x" * 10_000)
        assert queued_bytes(connection) == 10_000  # queued until the loop runs
        connection.doWrite()  # the loop's turn: the kernel takes some
        kernel_took = 10_000 - queued_bytes(connection)
        assert kernel_took > 0
        assert right.recv(100_000)
    finally:
        left.close()
        right.close()
