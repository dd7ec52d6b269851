"""
A client that stops reading and floods `resume` frames, each a page of 1,000
messages of 1,900 characters (about 2 MB), against one Daphne with the
production settings (deploy/start-ws.sh): the resume rate limit answers all
but the first few with a small error, and once DAPHNE_MAX_SEND_BACKLOG bytes
wait to be sent to the socket (lever send_backlog) it is closed and dropped.
Daphne's memory stays bounded, and it serves others throughout.
"""

import base64
import json
import os
import socket
import struct
import time

import pytest

from chat.models import Message, Room

from .cluster import django_database_url
from .load_rig import one_daphne, seed

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

MESSAGES = 1_000
BODY = "x" * 1_900
RESUMES = 600
# What levers/backlog.py logs when it closes a socket.
CLOSED = "wait to be sent to it"


def handshake(port: int, path: str, cookie: str) -> socket.socket:
    """A WebSocket opened by hand with a small receive buffer, never read."""
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += conn.recv(1)  # byte by byte: nothing past the headers
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return conn


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[n % 4] for n, byte in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


def test_a_resume_flood_from_a_client_that_stops_reading_is_bounded(tmp_path, figure):
    with one_daphne(tmp_path, django_database_url()) as rig:
        [cookie] = seed(rig.cluster.env, 1, 1)
        room = Room.objects.get(slug="bench-0")
        Message.objects.bulk_create(
            Message(room=room, author=room.created_by, body=BODY, client_id=f"h{n}")
            for n in range(MESSAGES)
        )
        before = rig.vitals()["rss_mb"]
        conn = handshake(rig.daphne.port, "/ws/chat/bench-0/", cookie)
        sent = 0
        try:
            resume = masked_text_frame(json.dumps({"type": "resume", "after": 0}))
            for sent in range(1, RESUMES + 1):  # noqa: B007 (counted below)
                conn.sendall(resume)
        except OSError:  # closed by the server meanwhile
            pass
        # The lever closes it at a frame sent past the limit; wait for that.
        deadline, peak = time.monotonic() + 30, before
        while time.monotonic() < deadline:
            vitals = rig.vitals()
            peak = max(peak, vitals["rss_mb"])
            if vitals["client_sockets"] == 0 and rig.log_count(CLOSED):
                break
            time.sleep(0.1)
        closed = rig.vitals()["client_sockets"] == 0
        conn.close()
        closings = rig.log_count(CLOSED)
        ready = rig.ready()
    figure("resume flood: resumes sent before the server closed", sent)
    figure(
        "resume flood: Daphne RSS before / at most meanwhile (MB)", f"{before} / {peak}"
    )
    figure("resume flood: sockets closed for their backlog", closings)
    assert closed and closings == 1
    assert peak - before < 64  # one page and the limit, not 600 pages
    assert ready == 200
