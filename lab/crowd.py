"""
A room full of people under load, for the fault tests: WebSocket clients
sending at a steady rate, and an HTTP client polling the history and posting.
When the fault is over, `Crowd.settle` waits until everything sent is stored
and every client holds every stored message.
"""

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

from .chatters import ChatClient, HttpClient
from .cluster import Cluster, StoredMessage

SETTLE_TIMEOUT = 30


async def eventually(
    condition: Callable[[], bool], timeout: float, describe: Callable[[], object]
) -> float:
    """Wait until condition() holds; the seconds it took. Fails after timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {describe()}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


class Crowd:
    """People in one room, each with a socket (through nginx unless told)."""

    def __init__(self, cluster: Cluster, slug: str, size: int):
        self.cluster, self.slug, self.size = cluster, slug, size
        self.clients: list[ChatClient] = []
        self.cookies: dict[str, str] = {}
        self._load: asyncio.Task | None = None
        self.sent_by_load = 0

    async def enter(self, url: str | None = None, origin: str | None = None) -> None:
        """Seed the users (and a poster for HTTP), open every socket."""
        names = [f"{self.slug}-{n:02}" for n in range(self.size)]
        self.cookies = await asyncio.to_thread(
            self.cluster.seed, self.slug, [*names, f"{self.slug}-poster"]
        )
        self.clients = [
            ChatClient(
                name,
                url or self.cluster.ws_url(self.slug),
                self.cookies[name],
                origin or self.cluster.origin,
            )
            for name in names
        ]
        for client in self.clients:
            await client.start()
        await eventually(
            lambda: all(client.connects for client in self.clients),
            30,
            lambda: [c.connect_failures for c in self.clients if not c.connects],
        )

    def http_client(self) -> HttpClient:
        return HttpClient(self.cluster.origin, self.cookies[f"{self.slug}-poster"])

    async def leave(self) -> None:
        await self.stop_load()
        await asyncio.gather(*(client.stop() for client in self.clients))

    # --- load ----------------------------------------------------------------

    def start_load(self, per_second: float) -> None:
        self._load = asyncio.create_task(self._send_load(per_second))

    async def stop_load(self) -> None:
        if self._load is not None:
            self._load.cancel()
            await asyncio.gather(self._load, return_exceptions=True)
            self._load = None

    async def _send_load(self, per_second: float) -> None:
        while True:
            client = self.clients[self.sent_by_load % len(self.clients)]
            await client.send(f"{client.name} says {self.sent_by_load}")
            self.sent_by_load += 1
            await asyncio.sleep(1 / per_second)

    # --- settling ------------------------------------------------------------

    async def settle(self, timeout: float = SETTLE_TIMEOUT) -> list[StoredMessage]:
        """Every send echoed, then a last message from everyone's point of view:
        its prev_id shows any client a gap left, which it resumes to fill."""
        await eventually(
            lambda: not any(client.pending for client in self.clients),
            timeout,
            lambda: {c.name: len(c.pending) for c in self.clients if c.pending},
        )
        await self.clients[0].send("the last word")
        await eventually(
            lambda: not self.clients[0].pending, timeout, lambda: "no echo"
        )
        stored = await asyncio.to_thread(self.cluster.room_messages, self.slug)
        ids = [message.id for message in stored]
        await eventually(
            lambda: all(client.holds(ids) for client in self.clients),
            timeout,
            lambda: {
                c.name: sorted(set(ids) - c.held.keys())[:10]
                for c in self.clients
                if not c.holds(ids)
            },
        )
        return stored


class HttpTraffic:
    """One user of the JSON API: polls the history for what is new and posts
    now and then, retrying a post with the same client_id until it is stored."""

    def __init__(self, client: HttpClient, slug: str, post_every: int = 10):
        # Every 10th round, about once a second: within the rate limit
        # (CHAT_MESSAGE_RATE_LIMIT, 20 per 10 s).
        self.client, self.slug, self.post_every = client, slug, post_every
        self.gets: Counter[int] = Counter()
        self.posts: Counter[int] = Counter()
        self.posted: dict[str, str] = {}  # client_id -> body, once stored
        self.unconfirmed: dict[str, str] = {}
        self.last_id = 0
        self.retry_at = 0.0  # a 429 or 5xx asks to wait before posting again
        self._task: asyncio.Task | None = None
        self._posting = threading.Lock()

    @property
    def api(self) -> str:
        return f"/api/rooms/{self.slug}/messages/"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # Whatever was still unconfirmed gets its answer now.
        deadline = time.monotonic() + 30
        while self.unconfirmed and time.monotonic() < deadline:
            await asyncio.sleep(max(0.0, self.retry_at - time.monotonic()))
            for client_id in list(self.unconfirmed):
                await asyncio.to_thread(self._post, client_id)

    async def _run(self) -> None:
        rounds = 0
        while True:
            await asyncio.to_thread(self._poll)
            rounds += 1
            if rounds % self.post_every == 0:
                client_id = uuid.uuid4().hex
                self.unconfirmed[client_id] = f"posted over HTTP {rounds}"
            if time.monotonic() >= self.retry_at:
                for client_id in list(self.unconfirmed):
                    await asyncio.to_thread(self._post, client_id)
            await asyncio.sleep(0.1)

    def _poll(self) -> None:
        status, data = self.client.request(f"{self.api}?after={self.last_id}&limit=200")
        self.gets[status] += 1
        if status == 200 and data["messages"]:
            self.last_id = data["messages"][-1]["id"]

    def _post(self, client_id: str) -> None:
        # One post at a time: a cancelled task leaves its thread running.
        with self._posting:
            body = self.unconfirmed.get(client_id)
            if body is not None:
                self._post_once(client_id, body)

    def _post_once(self, client_id: str, body: str) -> None:
        status, data = self.client.request(
            self.api, {"body": body, "client_id": client_id}
        )
        self.posts[status] += 1
        if status in (200, 201):
            self.posted[client_id] = self.unconfirmed.pop(client_id)
        elif status == 429:
            self.retry_at = time.monotonic() + data["error"]["retry_after"]
        else:  # no answer, or 5xx (503 unavailable): back off a little
            self.retry_at = time.monotonic() + 0.5


@contextlib.asynccontextmanager
async def chatting(
    cluster: Cluster, slug: str, size: int, *, per_second: float
) -> AsyncIterator[tuple[Crowd, HttpTraffic]]:
    """`size` people in the room `slug`, sending `per_second` messages between
    them, and an HTTP client polling its history and posting to it, for two
    seconds before the body runs; all stopped and gone when it ends. The body
    stops the load and settles the crowd when it is done with the fault."""
    crowd = Crowd(cluster, slug, size)
    http = None
    try:
        await crowd.enter()
        http = HttpTraffic(crowd.http_client(), crowd.slug)
        http.start()
        crowd.start_load(per_second=per_second)
        await asyncio.sleep(2)
        yield crowd, http
    finally:
        if http is not None:
            await http.stop()
        await crowd.leave()
