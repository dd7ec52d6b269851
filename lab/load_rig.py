"""
The rig of the load tests (test_load*.py): one Daphne process started from
deploy/start-ws.sh with a Redis of the test's own (so that every pub/sub
channel in it is the channel layer's), users, rooms and sessions made by the
benchmark's seeding (bench/project.py: rooms bench-0, bench-1, ..., as the
load generator names them), what the process and Redis hold (bench/vitals.py),
and a broadcast round trip to a fresh client.
"""

import asyncio
import contextlib
import json
import resource
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import median

import redis
from websockets.asyncio.client import connect

from bench import vitals
from tests.processes import BASE_DIR, BIN, ServerProcess

from .backing import RedisServer
from .cluster import Cluster, server_env

# What Daphne logs when a consumer outlives --application-close-timeout.
KILLED = "took too long to shut down and was killed"


def open_files_limit() -> int:
    """Raise this process's soft limit on open files to the hard one (servers
    and load generator processes inherit it); the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def seed(env: dict[str, str], users: int, rooms: int) -> list[str]:
    """Users bench-0..., rooms bench-0... and one session per user, in the
    database of env's DATABASE_URL, signed with env's secret key: their
    Cookie headers."""
    result = subprocess.run(
        [str(BIN / "python"), "-m", "bench.project", "--users", str(users),
         "--rooms", str(rooms)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
        check=True,
    )  # fmt: skip
    return json.loads(result.stdout.splitlines()[-1])


@dataclass
class Rig:
    cluster: Cluster
    daphne: ServerProcess
    redis: redis.Redis

    @property
    def prefix(self) -> str:
        return self.cluster.env["REDIS_PREFIX"]

    @property
    def url(self) -> str:
        """The load generator's URL template ({room} is its room number)."""
        return f"ws://127.0.0.1:{self.daphne.port}/ws/chat/{{room}}/"

    @property
    def origin(self) -> str:
        return self.daphne.url

    def vitals(self) -> dict:
        return vitals.process_vitals(self.daphne.process.pid, self.daphne.port)

    def subscriptions(self) -> dict:
        return vitals.subscriptions(self.redis, self.prefix)

    def presence(self, live: bool = False) -> int:
        return vitals.presence_entries(self.redis, self.prefix, live)

    def ready(self) -> int:
        with urllib.request.urlopen(f"{self.daphne.url}/readyz", timeout=10) as resp:
            return resp.status

    def log_count(self, text: str) -> int:
        return sum(1 for line in self.daphne.logs().splitlines() if text in line)


@contextlib.contextmanager
def one_daphne(log_dir, database_url: str, **env: str) -> Iterator[Rig]:
    """A Redis of our own and one Daphne (deploy/start-ws.sh) with the
    production settings (HTTPS off) plus `env`; both stopped afterwards."""
    open_files_limit()
    redis_server = RedisServer(log_dir)
    cluster = Cluster(
        env=server_env(database_url, ""), log_dir=log_dir, redis=redis_server
    )
    client = None
    try:
        redis_server.start()
        cluster.env["REDIS_URL"] = redis_server.url
        cluster.env.update(env)
        daphne = cluster.add_daphne()
        daphne.wait_ready()
        client = redis.Redis.from_url(redis_server.url)
        yield Rig(cluster, daphne, client)
    finally:
        if client is not None:
            client.close()
        cluster.stop()


def wait_until(condition, timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until condition() held, or None if it did not within timeout."""
    start = time.monotonic()
    while True:
        if condition():
            return round(time.monotonic() - start, 2)
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)


# --- a broadcast round trip ----------------------------------------------------------


@contextlib.asynccontextmanager
async def _joined(url: str, origin: str, cookie: str):
    """A socket in a room, once its hello has come; closed afterwards."""
    async with connect(
        url,
        origin=origin,
        additional_headers={"Cookie": cookie},
        open_timeout=60,
        max_queue=None,  # never push back on the server while we wait
    ) as socket:
        await _until(socket, lambda frame: frame["type"] == "hello")
        yield socket


async def _until(socket, match, timeout: float = 60) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if match(frame):
                return frame


async def round_trips(
    url: str, origin: str, pairs: list[tuple[str, str, str]], per_room: int = 3
) -> list[float]:
    """For each (room, sender's cookie, receiver's cookie): a sender and a
    freshly connected receiver join the room, and the sender sends
    `per_room` messages one after the other; the milliseconds from each send
    to its broadcast reaching the receiver. Bodies are load-generator payloads,
    so load generator clients in the same room take them as any other."""
    times = []
    for slug, sender_cookie, receiver_cookie in pairs:
        room_url = url.format(room=slug)
        async with (
            _joined(room_url, origin, sender_cookie) as sender,
            _joined(room_url, origin, receiver_cookie) as receiver,
        ):
            for n in range(per_room):
                client_id = f"probe-{uuid.uuid4().hex}"
                began = time.monotonic_ns()
                body = json.dumps({"s": -1, "q": n, "t": began})
                frame = {"type": "message", "body": body, "client_id": client_id}
                await sender.send(json.dumps(frame))
                await _until(receiver, lambda f, c=client_id: f.get("client_id") == c)
                times.append((time.monotonic_ns() - began) / 1e6)
    return times


def summarize_ms(times: list[float]) -> str:
    if not times:
        return "none"
    return f"median {median(times):.1f}, max {max(times):.1f} ({len(times)} sends)"
