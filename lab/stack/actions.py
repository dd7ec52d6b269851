"""
What the stack tests do to the stack, as users and operators would: sign up,
create rooms, post over HTTP, open chat sockets, read replicas' logs, count
database connections, kill or stop a Daphne replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

from .clients import ChatSocket, Session
from .stack import PROJECT_NAME

PASSWORD = "a-long-stack-test-password-42"


def sign_up(stack, username: str) -> Session:
    session = Session(stack.origin, str(stack.ca_file))
    response = session.post_form(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status == 200, response.text[:500]
    assert session.cookie("sessionid"), "sign-up did not log the user in"
    return session


def create_room(session: Session) -> str:
    slug = f"stack-{uuid.uuid4().hex[:8]}"
    response = session.post_form("/", {"title": f"Room {slug}", "slug": slug})
    assert response.status == 200 and response.url.endswith(f"/rooms/{slug}/")
    return slug


def post_message(stack, session: Session, slug: str, body: str) -> int:
    """POST a message over the HTTP API (gunicorn); its id."""
    response = session.request(
        "POST",
        f"/api/rooms/{slug}/messages/",
        json_body={"body": body, "client_id": uuid.uuid4().hex},
        headers={"Origin": stack.origin},
    )
    assert response.status == 201, response.text
    return response.json()["id"]


def ws_url(stack, slug: str) -> str:
    return f"wss://localhost:{stack.https_port}/ws/chat/{slug}/"


def log_counts(stack, service: str, needle: str, total: int) -> dict[str, int]:
    """How often each replica's own log shows `needle` (say a request line),
    once the replicas together show it `total` times: logs reach Docker a
    moment after the request."""
    deadline = time.monotonic() + 10
    while True:
        counts = {
            container["Name"].lstrip("/"): stack.container_log(container).count(needle)
            for container in stack.containers(service)
        }
        if sum(counts.values()) >= total or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def connects_per_replica(stack, slug: str, total: int) -> dict[str, int]:
    """From each Daphne replica's access log: sockets opened to this room."""
    return log_counts(stack, "ws", f'"WSCONNECT /ws/chat/{slug}/"', total)


def stored_ids(session: Session, slug: str) -> list[int]:
    ids, after = [], 0
    while True:
        page = session.get(f"/api/rooms/{slug}/messages/?after={after}&limit=200")
        assert page.status == 200, page.text
        body = page.json()
        ids += [message["id"] for message in body["messages"]]
        if not body["has_more"]:
            return ids
        after = ids[-1]


async def wait_for_stored(session: Session, slug: str, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while True:
        ids = await asyncio.to_thread(stored_ids, session, slug)
        if len(ids) >= count or time.monotonic() > deadline:
            assert len(ids) == count, f"{len(ids)} stored, expected {count}"
            return ids
        await asyncio.sleep(0.2)


async def open_sockets(stack, people, slug: str, count: int) -> list[ChatSocket]:
    sockets = [
        ChatSocket(ws_url(stack, slug), people[n % len(people)], name=f"client{n}")
        for n in range(count)
    ]
    await asyncio.gather(*(s.start() for s in sockets))
    return sockets


@contextlib.asynccontextmanager
async def chatting(stack, people, count: int) -> AsyncIterator[tuple[str, list]]:
    """A new room with `count` sockets in it, closed afterwards."""
    slug = create_room(people[0])
    sockets = await open_sockets(stack, people, slug, count)
    try:
        yield slug, sockets
    finally:
        await asyncio.gather(*(s.stop() for s in sockets))


def busiest_ws_replica(stack, slug: str, total: int) -> tuple[dict, int]:
    """The Daphne container holding most of the room's `total` sockets, and
    how many it holds."""
    per_replica = connects_per_replica(stack, slug, total)
    name = max(per_replica, key=per_replica.get)
    container = next(c for c in stack.containers("ws") if c["Name"].lstrip("/") == name)
    return container, per_replica[name]


def database_connections(stack) -> int:
    result = stack.run(
        "exec", "-T", "db", "psql",
        f"--username={PROJECT_NAME}", f"--dbname={PROJECT_NAME}",
        "--tuples-only", "--no-align", "--command",
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE datname = '{PROJECT_NAME}' AND pid <> pg_backend_pid()",
    )  # fmt: skip
    return int(result.stdout.strip())


def kill_daphne(container: dict) -> None:
    """SIGKILL the Daphne process, as a crash would (not `docker stop`): every
    process in the container but its init, which then exits. As the app's own
    user: root in the container has no capability to signal another user's."""
    subprocess.run(
        ["docker", "exec", container["Id"], "sh", "-c", "kill -9 -1"],
        capture_output=True, check=False,
    )  # fmt: skip
