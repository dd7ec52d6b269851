"""
Lever "write_at_once" (levers/transport.py): Daphne's connections send a write
at once instead of registering with the event loop for each one, and a reader
too slow for the socket's buffer still gets every byte, in order
(levers/tests/transport_probe.py runs the server).
"""

import json
import socket
import subprocess
import time

import pytest

from tests.processes import BASE_DIR, BIN, free_port

from .transport_probe import chunk

pytestmark = pytest.mark.system


def received(
    *options: str, chunks: int, size: int, read_after: float = 0, pace: float = 0
) -> dict:
    """Connect to a probe server, wait `read_after` seconds, then read until it
    closes (64 KiB every `pace` seconds); what the probe said, and whether the
    bytes were right."""
    port = free_port()
    probe = subprocess.Popen(
        [str(BIN / "python"), "-m", "levers.tests.transport_probe", str(port),
         "--chunks", str(chunks), "--size", str(size), *options],
        cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        client = connect(port, probe)
        with client:
            time.sleep(read_after)
            data = bytearray()
            while block := client.recv(1 << 16):
                data += block
                time.sleep(pace)
        output, errors = probe.communicate(timeout=30)
    finally:
        probe.kill()
    assert probe.returncode == 0, errors
    expected = b"".join(chunk(number, size) for number in range(chunks))
    return {**json.loads(output), "intact": bytes(data) == expected, "bytes": len(data)}


def connect(port: int, probe: subprocess.Popen) -> socket.socket:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if probe.poll() is not None:
            pytest.fail(probe.stderr.read())
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except ConnectionRefusedError:
            time.sleep(0.05)
    pytest.fail("the probe never listened")


def test_writes_leave_without_registering_with_the_loop():
    # One write a turn of the loop, as frames to a socket come in a chat.
    ours = received("--every", "0", chunks=50, size=200)
    twisted = received("--every", "0", "--twisted", chunks=50, size=200)
    assert ours["intact"] and twisted["intact"]
    # Twisted registers a writer for every write (and one more to close).
    assert twisted["writers_registered"] >= 50, twisted
    # Ours only to close the connection.
    assert ours["writers_registered"] <= 1, ours


def test_a_slow_reader_gets_every_byte_in_order():
    # 32 MiB, far more than the socket buffers hold: most of it is queued while
    # the client does not read, and goes once it does.
    slow = received(chunks=128, size=256 * 1024, read_after=1)
    assert slow["intact"], slow["bytes"]
    assert slow["writers_registered"] >= 1, slow


def test_a_write_never_overtakes_what_is_queued():
    # Writes go on while a slow reader drains the buffer bit by bit: whenever
    # the socket could take a new write, older bytes may still wait in
    # Twisted's queue, and they go first.
    mixed = received(
        "--every", "0.002", chunks=300, size=64 * 1024, read_after=0.2, pace=0.004
    )
    assert mixed["intact"], mixed["bytes"]
