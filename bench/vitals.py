"""
The vital signs of a long-running Daphne process and of its channel layer, for
the load tests (lab/test_load*.py) and the soak (bench/soak.py).

The process: resident memory, open file descriptors, threads and the client
sockets it holds. The channel layer (channels_redis' RedisPubSubChannelLayer):
every consumer's channel and every group with a member in a process is one
SUBSCRIBE of that process's pub/sub connection, named after REDIS_PREFIX, so
`PUBSUB CHANNELS <prefix>*` lists exactly what the servers of one prefix are
subscribed to; and the presence entries (chat/presence_store.py), one per
socket in a sorted set per user and room.
"""

from __future__ import annotations

import contextlib
import time

import psutil
import redis

MB = 2**20
# PUBSUB NUMSUB takes any number of channels; a few thousand per call keeps each
# reply small.
NUMSUB_BATCH = 2000


def process_vitals(pid: int, port: int | None = None) -> dict:
    """RSS (MB), open fds and threads of a process; with `port`, also the
    established TCP connections on that local port (its clients)."""
    process = psutil.Process(pid)
    with process.oneshot():
        vitals = {
            "rss_mb": round(process.memory_info().rss / MB, 1),
            "fds": process.num_fds(),
            "threads": process.num_threads(),
        }
    if port is not None:
        vitals["client_sockets"] = client_sockets(pid, port)
    return vitals


def client_sockets(pid: int, port: int) -> int:
    """Established TCP connections of a process on its local `port`."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return sum(
            1
            for conn in psutil.Process(pid).net_connections("tcp")
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
        )
    return 0


def connections_to(pid: int, ports: dict[str, int]) -> dict[str, int]:
    """A process's TCP connections to each remote port, e.g. its pools'
    connections to Redis and PostgreSQL: {"redis": 21, "postgres": 4}."""
    counts = dict.fromkeys(ports, 0)
    with contextlib.suppress(psutil.NoSuchProcess):
        for conn in psutil.Process(pid).net_connections("tcp"):
            for name, port in ports.items():
                if conn.raddr and conn.raddr.port == port:
                    counts[name] += 1
    return counts


def subscriptions(client: redis.Redis, prefix: str) -> dict:
    """The channel layer's pub/sub channels with a subscriber, by kind, and the
    subscriptions to them (a channel subscribed by two processes counts two)."""
    channels = [
        name.decode() if isinstance(name, bytes) else name
        for name in client.pubsub_channels(f"{glob_escape(prefix)}*")
    ]
    subscribers = 0
    for start in range(0, len(channels), NUMSUB_BATCH):
        batch = channels[start : start + NUMSUB_BATCH]
        subscribers += sum(count for _name, count in client.pubsub_numsub(*batch))
    kinds = {"specific": 0, "room_groups": 0, "user_groups": 0, "other": 0}
    for name in channels:
        rest = name[len(prefix) :]
        if rest.startswith("specific."):
            kinds["specific"] += 1  # a consumer's own channel
        elif rest.startswith("__group__chat.room."):
            kinds["room_groups"] += 1
        elif rest.startswith("__group__chat.user."):
            kinds["user_groups"] += 1
        else:
            kinds["other"] += 1  # e.g. the /readyz probe's channel
    return {"channels": len(channels), "subscribers": subscribers, **kinds}


def presence_entries(client: redis.Redis, prefix: str, live: bool = False) -> int:
    """Sockets listed in the rooms' presence sets; with `live`, only those not
    yet expired (an entry's score is its expiry time)."""
    low = f"({time.time()}" if live else "-inf"
    pattern = f"{glob_escape(prefix)}:presence:*:sockets:*"
    return sum(
        client.zcount(key, low, "+inf") for key in client.scan_iter(match=pattern)
    )


def glob_escape(text: str) -> str:
    """`text` matched literally in a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
