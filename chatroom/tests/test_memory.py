"""chatroom.memory: the Daphne process's garbage collector thresholds, and
memory handed back to the system once a wave of sockets has closed."""

import gc
import logging

import pytest

from chatroom.memory import (
    GC_THRESHOLDS,
    FreedMemoryReturner,
    malloc_trim,
    set_gc_thresholds,
)


class Trims:
    def __init__(self, fail: bool = False) -> None:
        self.count, self.fail = 0, fail

    def __call__(self) -> None:
        self.count += 1
        if self.fail:
            raise OSError("no")


def test_memory_is_handed_back_once_sockets_stop_closing():
    trims = Trims()
    returner = FreedMemoryReturner(trim=trims)
    for _ in range(3):
        returner.socket_closed()
    returner.tick()
    returner.socket_closed()  # a storm of disconnects goes on
    returner.tick()
    assert trims.count == 0

    returner.tick()  # an interval without a closed socket
    assert trims.count == 1
    returner.tick()
    returner.tick()
    assert trims.count == 1  # nothing freed since


def test_nothing_closed_nothing_trimmed():
    trims = Trims()
    returner = FreedMemoryReturner(trim=trims)
    for _ in range(5):
        returner.tick()
    assert trims.count == 0


def test_a_failed_trim_is_logged_and_the_next_wave_trims_again(caplog):
    trims = Trims(fail=True)
    returner = FreedMemoryReturner(trim=trims)
    with caplog.at_level(logging.ERROR, logger="chatroom.memory"):
        for _ in range(2):
            returner.socket_closed()
            returner.tick()
            returner.tick()
    assert trims.count == 2
    assert "malloc_trim failed" in caplog.text


def test_glibc_trim_is_found_and_runs():
    trim = malloc_trim()
    assert trim is not None  # Debian, and the project's images, use glibc
    assert trim() in (0, 1)


def test_gc_thresholds_make_full_collections_rarer():
    before = gc.get_threshold()
    try:
        set_gc_thresholds(GC_THRESHOLDS)
        assert gc.get_threshold() == (700, 10, 1000)
        set_gc_thresholds("  ")  # empty: Python's thresholds stay as they are
        assert gc.get_threshold() == (700, 10, 1000)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("value", ["abc", "700,10", "700,0,1000", "1,2,3,4"])
def test_bad_gc_thresholds_are_refused_with_a_message(value):
    with pytest.raises(SystemExit, match="three positive whole numbers"):
        set_gc_thresholds(value)
