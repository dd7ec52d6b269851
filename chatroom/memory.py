"""
Memory of the Daphne process (chatroom/wsserver.py): how often Python's cyclic
garbage collector walks the whole heap, and handing memory that sockets freed
back to the system.
"""

import ctypes
import ctypes.util
import gc
import logging
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Python's own thresholds are 700, 10, 10. See set_gc_thresholds().
GC_THRESHOLDS = "700,10,1000"


def set_gc_thresholds(value: str) -> None:
    """
    Make full garbage collections a hundred times rarer than Python's default.

    A full collection walks every object the process holds and stops every
    socket meanwhile: about a second with 10,000 sockets open. While sockets
    connect, Python runs one each time the heap has grown by a quarter, about
    twenty in a connect storm, so a storm's handshakes waited seconds for them.
    Closed connections no longer need the cyclic collector to be freed
    (chatroom.wsserver.GracefulServer.protocol_disconnected), so rarer full
    collections do not make memory grow; the younger generations are collected
    as before.
    DAPHNE_GC_THRESHOLDS="" keeps Python's thresholds.
    """
    if not value.strip():
        return
    try:
        thresholds = [int(part) for part in value.split(",")]
        if len(thresholds) != 3 or min(thresholds) < 1:
            raise ValueError
    except ValueError:
        sys.exit(
            f"DAPHNE_GC_THRESHOLDS must be three positive whole numbers, as "
            f"{GC_THRESHOLDS!r} (see gc.set_threshold), not {value!r}"
        )
    gc.set_threshold(*thresholds)


def malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


class FreedMemoryReturner:
    """
    Hands back to the system the memory a wave of closed sockets freed.

    A socket's objects are freed when it closes, but the C allocator keeps the
    pages for reuse, so a process that held 2,000 sockets stays 88 MB above
    where it started after they have gone. glibc returns the pages that are
    wholly free when asked (malloc_trim): 21 MB of those 88 here, in about
    5 ms. Asked once sockets have stopped closing for an interval, so not
    during a storm of disconnects, nor while nothing changes.
    """

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
