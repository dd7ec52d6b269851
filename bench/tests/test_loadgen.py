"""
The load generator's clients (bench.loadgen): a chatroom client counts as
connected once its hello frame has come, not at the handshake, since the server
accepts first and only then puts the socket in its room; a socket refused
after the handshake counts as failed.
"""

import asyncio
import json
import threading
from contextlib import contextmanager

from websockets.asyncio.server import broadcast, serve

from bench.loadgen import Load, run

# Seconds from the handshake to the hello: longer than the load generator waits
# between its last handshake and its first message.
JOIN_DELAY = 1.5


@contextmanager
def stand_in_server(refuse: bool = False):
    """A chatroom stand-in on a loopback port: it accepts, sends a presence
    frame, and JOIN_DELAY later a hello (or an error frame and a close). Then
    the socket is in the room: each message goes to every socket in it. A
    message sent before its sender's hello reaches nobody, as a broadcast
    published before a socket joined its group misses that socket."""
    ready = threading.Event()
    port = []

    async def chat(socket):
        await socket.send(json.dumps({"type": "presence", "users": []}))
        await asyncio.sleep(JOIN_DELAY)
        if refuse:
            await socket.send(json.dumps({"type": "error", "code": "room_not_found"}))
            await socket.close(4404)
            return
        await socket.send(json.dumps({"type": "hello", "last_id": None}))
        room.add(socket)
        try:
            async for text in socket:
                broadcast(room, text)
        finally:
            room.discard(socket)

    room: set = set()

    async def main(stop: asyncio.Event):
        async with serve(chat, "127.0.0.1", 0) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await stop.wait()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(stop),))
    thread.start()
    try:
        assert ready.wait(10)
        yield f"ws://127.0.0.1:{port[0]}/ws/chat/{{room}}/"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def load(url: str) -> Load:
    return Load(
        urls=[url], protocol="chatroom", rooms=1, clients=3, rate=20, duration=0.5,
        processes=1, drain=1,
    )  # fmt: skip


def test_a_chatroom_client_sends_only_once_its_hello_has_come():
    with stand_in_server() as url:
        result = run(load(url))
    assert (result.connected, result.failed) == (3, 0)
    # The handshake itself was quick; the hello came JOIN_DELAY later.
    assert max(result.handshakes_ms) < JOIN_DELAY * 1000
    assert result.sent > 0
    assert (result.delivered, result.lost) == (result.sent * 3, 0)


def test_a_socket_refused_after_its_handshake_counts_as_failed():
    with stand_in_server(refuse=True) as url:
        result = run(load(url))
    assert (result.connected, result.failed) == (0, 3)
    assert result.sent == 0
    assert all("refused: room_not_found" in error for error in result.errors)
