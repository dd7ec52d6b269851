"""
Lever "clean_stop": on SIGTERM, Daphne closes its WebSockets cleanly.

Plain Daphne drops every TCP connection on SIGTERM, so its WebSocket clients
see an abnormal closure (1006) and their consumers are cancelled mid-way
(django/daphne#177). This first stops listening (new sockets go to the other
replicas), sends every open WebSocket a close frame (1001, going away), and
waits up to DAPHNE_SHUTDOWN_TIMEOUT seconds for the clients to answer and the
consumers to run their disconnect handlers before Daphne cancels what is
left. Then the process exits, even when threads of HTTP requests Daphne
cancelled still wait for an event loop that is gone (plain Daphne can hang
there).
"""

import atexit
import logging
import os
import sys
import time

from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, reactor, task

logger = logging.getLogger(__name__)

GOING_AWAY = 1001
POLL_INTERVAL = 0.1
DEFAULT_TIMEOUT = 10  # seconds


class CleanStop:
    """A mixin for Daphne's Server."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.listening_ports = []

    def listen_success(self, port):
        self.listening_ports.append(port)
        return super().listen_success(port)

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
        timeout = float(os.environ.get("DAPHNE_SHUTDOWN_TIMEOUT") or DEFAULT_TIMEOUT)
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


def exit_now() -> None:
    """Leave once Daphne has stopped: run the exit hooks (the app's pending
    broadcasts are flushed by one), then exit without joining the worker
    threads of cancelled HTTP requests, which would wait for ever."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
