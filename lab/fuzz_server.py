"""
The live Daphne that the fuzz tests attack (test_fuzz.py, test_daphne_races.py):
deploy/start-ws.sh on loopback against the test PostgreSQL and Redis, with what
the tests need to read from it: its limits, its memory, its log, and the codes
docs/protocol.md documents.
"""

import contextlib
import os
import re
import uuid
from collections.abc import Iterator

import psutil
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.processes import BASE_DIR, BIN, ServerProcess, free_port

from .fuzz_client import FrameSender
from .fuzz_oracle import Limits

START_WS = BASE_DIR / "deploy" / "start-ws.sh"
PROTOCOL_DOC = BASE_DIR / "docs" / "protocol.md"
LOG_ALARMS = ("Traceback", "ERROR", "Exception")
# A log entry starts with a timestamp (Python logging) or a client address
# (Daphne's access log); other lines continue the entry above (tracebacks).
ENTRY_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|\d+\.\d+\.\d+\.\d+:\d+ )")
# The traceback of Daphne's race with autobahn (test_daphne_races.py), fixed by
# the lever LEVER_DROP_LATE_REPLIES (levers/replies.py).
KNOWN_RACE = "Disconnected: Attempt to send on a closed protocol"


@contextlib.contextmanager
def fuzz_daphne(tmp_path_factory, **variables: str) -> Iterator[ServerProcess]:
    """Daphne from deploy/start-ws.sh on the test database (a module fixture
    needs django_db_setup first), with these extra environment variables;
    ready, and stopped when the block ends."""
    db = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "chatroom.settings",
        # As in production: DEBUG would also keep every SQL query in memory.
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the sessions' signatures
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_STATIC_ROOT": str(tmp_path_factory.mktemp("static")),
        "DATABASE_URL": (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
            f"{db['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": f"fuzz-{uuid.uuid4().hex[:8]}",
        "DAPHNE_BIND": "127.0.0.1",
        "DAPHNE_PORT": str(port),
        # The fuzzer sends hundreds of valid messages a second, and wants each
        # one's broadcast: the rate limit has tests of its own.
        "CHAT_MESSAGE_RATE_LIMIT": "",
        # A resume replays at most 5 messages, so that "after": 0 costs five
        # frames, not a thousand: replay itself is test_servers.py's business.
        "CHAT_RESUME_MAX_MESSAGES": "5",
        # Hundreds of resumes and roster pages a second too, and the typing
        # probes' answers: the limits have tests of their own
        # (chat/tests/test_socket_limits.py).
        "CHAT_RESUME_RATE_LIMIT": "",
        "CHAT_PRESENCE_RATE_LIMIT": "",
        **variables,
    }
    server = ServerProcess(
        "daphne", [str(START_WS)], port, env, tmp_path_factory.mktemp("fuzz-logs")
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def deployed_limits() -> Limits:
    """The sizes the production command line and settings give Daphne."""
    script = START_WS.read_text()
    max_message = re.search(r"DAPHNE_MAX_MESSAGE_SIZE:-(\d+)", script)[1]
    return Limits(
        max_message_bytes=int(max_message),
        max_frame_chars=settings.CHAT_MAX_FRAME_LENGTH,
        max_body=settings.CHAT_MESSAGE_MAX_LENGTH,
    )


def documented_codes() -> tuple[set[str], set[int]]:
    """The error codes (the table under "### `error`") and every close code
    that docs/protocol.md names."""
    doc = PROTOCOL_DOC.read_text()
    error_section = doc.split("### `error`", 1)[1].split("\n## ", 1)[0]
    errors = set(re.findall(r"^\| `([a-z_]+)` +\|", error_section, re.MULTILINE))
    closes = {int(code) for code in re.findall(r"\b(10[0-9][0-9]|4[0-9]{3})\b", doc)}
    return errors, closes


def login_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def sender_for(daphne, user, slug: str) -> FrameSender:
    return FrameSender(
        f"ws://127.0.0.1:{daphne.port}/ws/chat/{slug}/",
        origin=f"http://127.0.0.1:{daphne.port}",
        cookie=login_cookie(user),
        username=user.get_username(),
    )


def rss(daphne) -> int:
    # start-ws.sh execs Python: the process started is Daphne itself.
    return psutil.Process(daphne.process.pid).memory_info().rss


def log_entries(log: str) -> list[str]:
    """The log as entries: a line with its continuation lines (a traceback)."""
    entries: list[str] = []
    for line in log.splitlines():
        if ENTRY_START.match(line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


def alarming_entries(log: str) -> list[str]:
    """The entries that log an error or a traceback (none is expected)."""
    return [e for e in log_entries(log) if any(a in e for a in LOG_ALARMS)]
