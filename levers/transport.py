"""
Lever "write_at_once": Twisted TCP (and UNIX socket) server transports that
send a write at once.

Twisted queues every write and asks the event loop to say when the socket can
take it: for every WebSocket frame, a writer registered with the loop, one
more turn of the loop, and the writer removed again, around a send() that
would have succeeded at once. These transports try the send() first when
nothing is queued, and queue only what the socket did not take, so the order
of the bytes and everything else (back-pressure, producers, errors, closing)
stays Twisted's. They read Twisted's private write buffers: requirements.txt
pins Twisted, and levers/tests/test_transport.py holds them to the behaviour
above.
"""

from twisted.internet import tcp, unix


class WriteAtOnce:
    """A transport mixin: write() sends what it can before queueing the rest."""

    def write(self, data: bytes) -> None:
        if (
            type(data) is bytes
            and data
            and self.connected
            and not self._writeDisconnected
            and not self.TLS
            # Nothing queued ahead of it, data or file descriptors (UNIX).
            and not self._tempDataBuffer
            and self.offset == len(self.dataBuffer)
            and not getattr(self, "_sendmsgQueue", None)
        ):
            try:
                sent = self.socket.send(data)
            except OSError:
                # A full buffer, or a connection that broke: queued below, where
                # Twisted's own write finds out, and closes, as it always does.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)


class TCPServer(WriteAtOnce, tcp.Server):
    pass


class UNIXServer(WriteAtOnce, unix.Server):
    pass


def install() -> None:
    """Make the connections that Twisted's TCP and UNIX listening ports accept
    from now on use these transports."""
    tcp.Port.transport = TCPServer
    unix.Port.transport = UNIXServer
