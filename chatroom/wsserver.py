"""
Daphne's command line with a clean stop, for deploy/start-ws.sh:

    python -m chatroom.wsserver [daphne options] chatroom.asgi:application

Plain Daphne drops every TCP connection on SIGTERM, so its WebSocket clients
see an abnormal closure (1006). This one first stops listening (new sockets go
to the other replicas), sends every open WebSocket a close frame (1001, going
away), and waits up to DAPHNE_SHUTDOWN_TIMEOUT seconds for the clients to
answer and the consumers to run their disconnect handlers (leaving groups and
presence) before Daphne cancels what is left. Then it exits, even when
threads of cancelled HTTP requests are still waiting (plain Daphne can hang
there after HTTP load).

It also runs Daphne on uvloop, frees closed connections without the cyclic
garbage collector (chatroom/memory.py), and sends each frame at once instead
of queueing it for the next turn of the loop (chatroom/transport.py).
"""

import asyncio
import logging
import os
import sys
import time

# Daphne creates its event loop when daphne.server is imported, so the loop
# policy is chosen before that. uvloop's loop runs the same asyncio code and
# does each socket write, task and callback for less CPU, which a process
# fanning one message out to hundreds of sockets does all day (docs/benchmarks.md).
if os.environ.get("DAPHNE_EVENT_LOOP", "uvloop") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

import txaio
from daphne.cli import CommandLineInterface
from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, reactor, task

from chatroom.memory import GC_THRESHOLDS, FreedMemoryReturner, set_gc_thresholds
from chatroom.transport import install_write_at_once

logger = logging.getLogger(__name__)

GOING_AWAY = 1001
POLL_INTERVAL = 0.1


class GracefulServer(Server):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.listening_ports = []
        self.memory_returner = FreedMemoryReturner()
        task.LoopingCall(self.memory_returner.tick).start(
            FreedMemoryReturner.INTERVAL, now=False
        )

    def listen_success(self, port):
        self.listening_ports.append(port)
        return super().listen_success(port)

    async def handle_reply(self, protocol, message):
        # autobahn marks a connection it fails (invalid UTF-8, an oversized
        # frame, a ping timeout) closed at once, but Daphne hears of it a turn
        # of the loop later; a reply sent in between would raise inside the
        # consumer and kill it before its disconnect() (django/channels#1820).
        # Drop it, as Daphne does for a socket it knows is gone.
        if (
            message.get("type") in ("websocket.send", "websocket.close")
            and isinstance(protocol, WebSocketProtocol)
            and protocol.state not in (protocol.STATE_OPEN, protocol.STATE_CONNECTING)
        ):
            return
        await super().handle_reply(protocol, message)

    def protocol_disconnected(self, protocol):
        super().protocol_disconnected(protocol)
        # Two reference cycles per WebSocket keep a closed connection's objects
        # (its protocol, transport, HTTP request and headers: 60 objects) alive
        # until a full collection, which with thousands of open sockets walks
        # millions of objects and stalls every socket for a second or more
        # (bench/LEVERS.md). Cutting them lets reference counting free a
        # connection as it goes.
        if isinstance(protocol, WebRequest):
            # Daphne calls this for the HTTP request right after handing its
            # transport to the WebSocket; the HTTP channel would keep the
            # request, and the request the channel, for the socket's lifetime.
            upgraded = protocol.transport is None and protocol.channel is not None
            if upgraded and protocol in protocol.channel.requests:
                protocol.channel.requests.remove(protocol)
        elif (
            isinstance(protocol, WebSocketProtocol)
            and protocol.state == WebSocketProtocol.STATE_CLOSED
        ):
            # autobahn resolves is_closed with the protocol itself; once
            # closed, it never looks at it again.
            protocol.is_closed = txaio.create_future_success(None)
            self.memory_returner.socket_closed()

    @defer.inlineCallbacks
    def kill_all_applications(self):
        yield self.close_websockets()
        result = yield super().kill_all_applications()
        return result

    @defer.inlineCallbacks
    def close_websockets(self):
        for port in self.listening_ports:
            yield port.stopListening()
        sockets = [
            protocol
            for protocol in list(self.connections)
            if isinstance(protocol, WebSocketProtocol)
            and protocol.state == WebSocketProtocol.STATE_OPEN
        ]
        for protocol in sockets:
            # Below autobahn's sendClose, which only allows 1000 and 3000-4999.
            protocol.sendCloseFrame(code=GOING_AWAY, reasonUtf8=b"server stopping")
        timeout = float(os.environ.get("DAPHNE_SHUTDOWN_TIMEOUT") or 10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            self._still_running(protocol) for protocol in sockets
        ):
            yield task.deferLater(reactor, POLL_INTERVAL, lambda: None)
        unfinished = sum(1 for protocol in sockets if self._still_running(protocol))
        logger.info(
            "Closed %i WebSockets; %i not finished in time", len(sockets), unfinished
        )

    def _still_running(self, protocol) -> bool:
        """The socket is open, or its consumer has not finished yet."""
        details = self.connections.get(protocol)
        if details is None:
            return False
        instance = details.get("application_instance")
        return protocol.state != WebSocketProtocol.STATE_CLOSED or (
            instance is not None and not instance.done()
        )


class GracefulCommandLineInterface(CommandLineInterface):
    server_class = GracefulServer


def main() -> None:
    set_gc_thresholds(os.environ.get("DAPHNE_GC_THRESHOLDS", GC_THRESHOLDS))
    # Frames leave at once instead of waiting for the loop to say the socket
    # can take them (chatroom/transport.py).
    install_write_at_once()
    GracefulCommandLineInterface().run(sys.argv[1:])
    # The broadcasts the consumers' database calls handed over still go out:
    # os._exit below skips the atexit hook that would send them.
    from chat.events import broadcasts_flush

    broadcasts_flush()
    # Daphne has stopped. Worker threads of HTTP requests it cancelled may wait
    # forever for an event loop that is gone, and the interpreter would join
    # them before exiting: flush and leave instead.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
