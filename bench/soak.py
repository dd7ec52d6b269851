"""
`make soak`: clients connect, chat and leave in cycles against one Daphne
process (deploy/start-ws.sh with the production settings, as bench/targets.py
runs it) while its resident memory, open file descriptors and client sockets
and the channel layer's subscriptions in Redis are sampled. After warm-up they
must stay flat; the soak exits 1 when they do not, and writes every sample and
its verdict to a JSON file.

    python -m bench.soak                     # three minutes of cycles
    python -m bench.soak --duration 14400    # four hours
    python -m bench.soak --duration 40 --cycle-seconds 3   # CI's short form

Each cycle is one run of the load generator (bench/loadgen.py): --rooms rooms
of --clients sockets connect, chat at --rate messages a second for
--cycle-seconds, and close. Then the soak waits until Daphne holds no client
socket and the subscriptions are back to the baseline, and samples (settled).
The first --warmup cycles fill the process's connection pools and caches; the
settled sample after the last of them is the reference. Flat means, for the
settled samples:

  - subscriptions: after every cycle, the channel layer's pub/sub channels in
    Redis (PUBSUB CHANNELS <prefix>*) are exactly those from before the first
    cycle, and Daphne holds no client socket;
  - presence: once the last cycle has settled, no live presence entry is left
    (one may linger for at most CHAT_PRESENCE_TTL, 60 s: the soak waits that
    long if it has to);
  - fds: after every cycle past warm-up, Daphne's open file descriptors, not
    counting its connections to Redis and PostgreSQL, are at most the
    reference's plus --fd-slack (default 0); those connections are pooled,
    and grow only while the pools fill, never past their bounds (Redis: 23,
    chat.presence's pool of 20 and the channel layer's few; PostgreSQL:
    DB_POOL_MAX_SIZE, 4 in deploy/start-ws.sh);
  - rss: the last cycle's resident memory is at most --rss-tolerance-mb
    (default 10) above the reference's. With the default load, about 4,000
    sockets come and go in three minutes: a leak of 2.5 KB per socket fails
    them, and four hours (some 300,000 sockets) one of 35 bytes;
  - delivery: every cycle connected every client and lost no broadcast.

Needs PostgreSQL and Redis: BENCH_POSTGRES_URL (a server to create a database
of the soak's own on, dropped afterwards; or --database-url to use an existing,
migrated one) and BENCH_REDIS_URL (its keys and channels under a prefix of
this run's own), as `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis

from . import vitals
from .loadgen import Load, run
from .targets import (
    BASE_DIR,
    POSTGRES_URL,
    REDIS_URL,
    Project,
    raise_open_files_limit,
)

RESULTS = BASE_DIR / "bench" / "results"
SETTLE_TIMEOUT = 60  # seconds for a cycle's disconnects to be undone
# The most connections Daphne's pools may hold (see the docstring's "fds").
POOL_BOUNDS = {"redis": 23, "postgres": 4}
PRESENCE_TTL = 60  # CHAT_PRESENCE_TTL's default
LOAD_FIELDS = ("connected", "failed", "sent", "expected", "delivered", "lost",
               "duplicated", "p50_ms", "p99_ms")  # fmt: skip


@dataclass
class SoakDaphne(Project):
    """One Daphne process (bench.targets.Project) on the soak's database."""

    database: str = ""
    redis_url: str = REDIS_URL

    def environment(self) -> dict[str, str]:
        return super().environment() | {
            "DATABASE_URL": self.database,
            "REDIS_URL": self.redis_url,
        }


@contextlib.contextmanager
def soak_database(url: str | None) -> Iterator[str]:
    """`url`, or a database of our own, created empty and dropped afterwards."""
    if url:
        yield url
        return
    name = f"chatroom_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Watch:
    """Daphne's vitals and the layer's subscriptions; a thread samples them
    every `interval` seconds while the soak runs."""

    def __init__(self, daphne: SoakDaphne, interval: float):
        self.pid, self.port = daphne.pids[0], daphne.ports[0]
        self.prefix = daphne.redis_prefix
        self.redis = redis.Redis.from_url(daphne.redis_url)
        self.peers = {
            "redis": urlsplit(daphne.redis_url).port or 6379,
            "postgres": urlsplit(daphne.database).port or 5432,
        }
        self.interval = interval
        self.began = time.monotonic()
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def vitals(self) -> dict:
        return {
            "t": round(time.monotonic() - self.began, 1),
            **vitals.process_vitals(self.pid, self.port),
            **vitals.connections_to(self.pid, self.peers),
        }

    def subscriptions(self) -> dict:
        return vitals.subscriptions(self.redis, self.prefix)

    def presence(self) -> int:
        return vitals.presence_entries(self.redis, self.prefix, live=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a sample missed is no failure
                sample = self.vitals()
                sample["channels"] = self.subscriptions()["channels"]
                self.samples.append(sample)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.redis.close()


def wait_until(condition, timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until condition() held, or None if it did not within timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
    return round(time.monotonic() - start, 2)


def cycle(number: int, daphne: SoakDaphne, watch: Watch, args, baseline) -> dict:
    load = Load(
        urls=daphne.urls, protocol="chatroom", rooms=args.rooms,
        clients=args.clients, rate=args.rate, duration=args.cycle_seconds,
        drain=2, cookies=daphne.cookies, origin=daphne.origin,
        processes=args.processes, connect_concurrency=8,
    )  # fmt: skip
    began = time.monotonic()
    summary = run(load).summary()
    settle = wait_until(
        lambda: (
            vitals.client_sockets(watch.pid, watch.port) == 0
            and watch.subscriptions() == baseline
        ),
        SETTLE_TIMEOUT,
    )
    return {
        "cycle": number,
        "seconds": round(time.monotonic() - began, 1),
        "settle_s": settle,
        **watch.vitals(),
        "subscriptions": watch.subscriptions(),
        "load": {name: summary[name] for name in LOAD_FIELDS},
    }


def own_fds(sample: dict) -> int:
    """Open fds but client sockets and pooled connections to Redis and
    PostgreSQL."""
    pooled = sum(sample[pool] for pool in POOL_BOUNDS)
    return sample["fds"] - sample["client_sockets"] - pooled


def verdict(cycles: list[dict], baseline: dict, presence_s, args) -> dict:
    reference, last = cycles[args.warmup - 1], cycles[-1]
    later = cycles[args.warmup :]
    growth = round(last["rss_mb"] - reference["rss_mb"], 1)
    return {
        "subscriptions": {
            "ok": all(
                c["subscriptions"] == baseline and c["client_sockets"] == 0
                for c in cycles
            ),
            "values": [c["subscriptions"]["channels"] for c in cycles],
            "baseline": baseline["channels"],
        },
        "presence": {"ok": presence_s is not None, "seconds_until_none": presence_s},
        "fds": {
            "ok": all(own_fds(c) <= own_fds(reference) + args.fd_slack for c in later)
            and all(
                c[pool] <= bound for c in cycles for pool, bound in POOL_BOUNDS.items()
            ),
            "values": [c["fds"] for c in cycles],
            "without_pools": [own_fds(c) for c in cycles],
            "reference_without_pools": own_fds(reference),
            "slack": args.fd_slack,
            "pools": {pool: [c[pool] for c in cycles] for pool in POOL_BOUNDS},
            "pool_bounds": POOL_BOUNDS,
        },
        "rss": {
            "ok": growth <= args.rss_tolerance_mb,
            "values": [c["rss_mb"] for c in cycles],
            "reference": reference["rss_mb"],
            "growth_mb": growth,
            "tolerance_mb": args.rss_tolerance_mb,
        },
        "delivery": {
            "ok": all(
                c["load"]["failed"] == 0 and c["load"]["lost"] == 0 for c in cycles
            ),
            "failed": sum(c["load"]["failed"] for c in cycles),
            "lost": sum(c["load"]["lost"] for c in cycles),
        },
    }


def soak(args) -> dict:
    raise_open_files_limit()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    with soak_database(args.database_url) as database:
        daphne = SoakDaphne(
            "soak-daphne", "chatroom", "chatroom, 1 Daphne process",
            database=database, redis_url=args.redis_url,
            redis_prefix=f"soak-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        daphne.start(args.log_dir, clients=args.rooms * args.clients)
        try:
            with Watch(daphne, args.interval) as watch:
                baseline = watch.subscriptions()
                before = watch.vitals()
                cycles: list[dict] = []
                began = time.monotonic()
                while len(cycles) < args.warmup + 2 or (
                    time.monotonic() - began < args.duration
                ):
                    cycles.append(cycle(len(cycles) + 1, daphne, watch, args, baseline))
                    print(json.dumps(cycles[-1]), flush=True)
                presence_s = wait_until(
                    lambda: watch.presence() == 0, PRESENCE_TTL + 10, interval=1
                )
                samples = watch.samples
        finally:
            daphne.stop()
    log = daphne.log.read_text(errors="replace")
    checks = verdict(cycles, baseline, presence_s, args)
    return {
        "parameters": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },  # fmt: skip
        "flat": all(check["ok"] for check in checks.values()),
        "checks": checks,
        "baseline": {"subscriptions": baseline, **before},
        "cycles": cycles,
        "samples": samples,
        "daphne_log": str(daphne.log),
        "log_tracebacks": log.count("Traceback (most recent call last)"),
        "log_killed_consumers": log.count("took too long to shut down"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=180,
        help="seconds of cycles (at least warm-up + 2 cycles)",
    )
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--clients", type=int, default=10, help="per room")
    parser.add_argument(
        "--rate", type=float, default=20, help="messages per second, all rooms together"
    )
    parser.add_argument(
        "--cycle-seconds", type=float, default=5, help="seconds of chat in each cycle"
    )
    parser.add_argument("--warmup", type=int, default=3, help="cycles")
    parser.add_argument("--rss-tolerance-mb", type=float, default=10)
    parser.add_argument("--fd-slack", type=int, default=0)
    parser.add_argument(
        "--interval", type=float, default=1, help="seconds between samples"
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="load generator processes"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json",
    )
    parser.add_argument("--log-dir", type=Path, default=RESULTS / "logs")
    parser.add_argument(
        "--database-url", help="a migrated database to use instead of a new one"
    )
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args(argv)  # fmt: skip
    if args.warmup < 1:
        parser.error("--warmup must be at least 1")

    report = soak(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(json.dumps({"flat": report["flat"], "checks": report["checks"]}, indent=1))
    print(f"samples: {args.output}", file=sys.stderr)
    return 0 if report["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
