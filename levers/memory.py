"""
Lever "memory": Daphne frees a closed WebSocket's objects as it closes, runs
full garbage collections rarely, and hands memory that a wave of closed
sockets freed back to the system.

- Two reference cycles keep a closed connection's objects (its protocol,
  transport, HTTP request and headers) alive until a full collection:
  autobahn resolves the protocol's is_closed future with the protocol
  itself, and the HTTP channel lists the request that was upgraded to the
  WebSocket. Both are cut when Daphne is done with the connection.
- A full collection walks every object the process holds and stops every
  socket meanwhile; Python runs one each time the heap has grown by a
  quarter, many times over during a connect storm. With the cycles cut,
  closed connections no longer wait for one, so full collections can be a
  hundred times rarer (GC_THRESHOLDS) without garbage piling up.
- The C allocator keeps the pages a closed socket's objects used. Once
  sockets have stopped closing for an interval, glibc is asked to return the
  wholly free ones (malloc_trim).
"""

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

import txaio
from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import task

logger = logging.getLogger(__name__)

# Python's own thresholds are 700, 10, 10.
GC_THRESHOLDS = (700, 10, 1000)


def install() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


class FreedConnections:
    """A mixin for Daphne's Server: closed connections freed as they close,
    and freed memory handed back."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.memory_returner = FreedMemoryReturner()
        task.LoopingCall(self.memory_returner.tick).start(
            FreedMemoryReturner.INTERVAL, now=False
        )

    def protocol_disconnected(self, protocol) -> None:
        super().protocol_disconnected(protocol)
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
            # Once closed, autobahn never looks at is_closed again.
            protocol.is_closed = txaio.create_future_success(None)
            self.memory_returner.socket_closed()


def malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


class FreedMemoryReturner:
    """Asks the allocator to hand back freed pages once sockets have stopped
    closing for an interval: not during a storm of disconnects, nor while
    nothing changes."""

    INTERVAL = 2.0  # seconds

    def __init__(self, trim: Callable[[], object] | None = None) -> None:
        self.trim = trim if trim is not None else malloc_trim()
        self.closed = 0  # sockets closed since the last trim
        self.closed_at_last_tick = 0

    def socket_closed(self) -> None:
        self.closed += 1

    def tick(self) -> None:
        if self.trim is None or not self.closed:
            return
        if self.closed != self.closed_at_last_tick:  # still closing
            self.closed_at_last_tick = self.closed
            return
        self.closed = self.closed_at_last_tick = 0
        try:
            self.trim()
        except Exception:  # never worth stopping the server for
            logger.exception("malloc_trim failed")
