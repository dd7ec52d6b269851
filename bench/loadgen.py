"""
WebSocket load generator for chat servers: the project's protocol, the Channels
tutorial's, and a raw broadcast server's.

Clients are spread over several processes so that the generator is not the
bottleneck. Messages go out on a fixed schedule (the offered rate), and each
one carries its sender, sequence number and *scheduled* send time, so latency
is measured from when the message should have left: a server that falls
behind cannot hide it by slowing the senders down (coordinated omission).

    python -m bench.loadgen --protocol raw --url ws://127.0.0.1:9000/ws/{room}/ \\
        --rooms 1 --clients 50 --rate 500 --duration 5

With several --url, the clients are dealt over the servers in turn, as a load
balancer in front of them would.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import time
import uuid
from array import array
from dataclasses import asdict, dataclass, field
from functools import partial
from queue import Empty

import websockets

NS = 1_000_000_000


@dataclass
class Load:
    urls: list[str]  # servers, each with {room} where the room name goes
    protocol: str  # "chatroom", "tutorial" or "raw"
    rooms: int
    clients: int  # per room
    rate: float  # messages per second, all rooms together
    duration: float  # seconds of sending
    cookies: list[str] = field(default_factory=list)  # Cookie headers, cycled
    origin: str | None = None
    processes: int = 0  # 0: one per core, at most 4
    drain: float = 3.0  # seconds to wait for late deliveries
    # Handshakes in flight per process. The tutorial's default layer refuses
    # part of a faster storm (its Redis pool is capped), and a connect storm is
    # not what the delivery scenarios measure.
    connect_concurrency: int = 16
    # Part of every client_id: the project stores one message per (author,
    # client_id), so a later load by the same users must not reuse ids.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class Result:
    clients: int = 0
    connected: int = 0
    failed: int = 0
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    latencies_ms: array = field(default_factory=lambda: array("d"))
    handshakes_ms: array = field(default_factory=lambda: array("d"))
    send_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.delivered)

    def merge(self, other: Result) -> None:
        for name in ("clients", "connected", "failed", "sent", "expected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("delivered", "duplicated", "out_of_order"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies_ms.extend(other.latencies_ms)
        self.handshakes_ms.extend(other.handshakes_ms)
        self.send_seconds = max(self.send_seconds, other.send_seconds)
        self.errors += other.errors[:5]

    def summary(self) -> dict:
        ordered = sorted(self.latencies_ms)
        pick = partial(quantile, ordered)

        seconds = self.send_seconds or 1  # the offered duration (see run())
        return {
            "clients": self.clients,
            "connected": self.connected,
            "failed": self.failed,
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "p50_ms": pick(0.50),
            "p90_ms": pick(0.90),
            "p99_ms": pick(0.99),
            "max_ms": round(ordered[-1], 2) if ordered else None,
            "deliveries_per_s": round(self.delivered / seconds),
            "handshake_p99_ms": quantile(sorted(self.handshakes_ms), 0.99),
            "errors": self.errors[:5],
        }


def quantile(ordered, q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


# --- wire formats ----------------------------------------------------------------


def encode(protocol: str, payload: str, sender: int, seq: int, run_id: str) -> str:
    if protocol == "chatroom":
        client_id = f"{run_id}-{sender}-{seq}"
        return json.dumps({"type": "message", "body": payload, "client_id": client_id})
    if protocol == "tutorial":
        return json.dumps({"message": payload})
    return payload


def decode(protocol: str, frame: str) -> str | None:
    """The payload of a delivered chat message, or None for other frames."""
    if protocol == "raw":
        return frame
    data = json.loads(frame)
    if protocol == "chatroom":
        return data["body"] if data.get("type") == "message" else None
    return data.get("message")


# --- one process's share of the clients ----------------------------------------------


class Receiver:
    """What one process's clients of one room received: for each message, a
    bitmask of the clients that got it (a second copy is a duplicate)."""

    def __init__(self, members: int):
        self.members = members
        self.seen: dict[tuple[int, int], int] = {}
        self.last_seq: dict[tuple[int, int], int] = {}
        self.result = Result()

    def record(self, member: int, payload: str, now_ns: int) -> None:
        message = json.loads(payload)
        key = (message["s"], message["q"])
        bit = 1 << member
        mask = self.seen.get(key, 0)
        if mask & bit:
            self.result.duplicated += 1
            return
        self.seen[key] = mask | bit
        self.result.delivered += 1
        self.result.latencies_ms.append((now_ns - message["t"]) / 1e6)
        order_key = (member, message["s"])
        if message["q"] < self.last_seq.get(order_key, -1):
            self.result.out_of_order += 1
        self.last_seq[order_key] = message["q"]


async def run_share(load: Load, share: list[tuple[int, int]], start, rate: dict):
    """Connect this process's clients, send this process's part of each room's
    messages on schedule from start_ns, collect deliveries, report."""
    result = Result(clients=len(share))
    by_room: dict[int, list[int]] = {}
    for client, room in share:
        by_room.setdefault(room, []).append(client)
    receivers = {room: Receiver(len(members)) for room, members in by_room.items()}
    sockets: dict[int, websockets.ClientConnection] = {}
    gate = asyncio.Semaphore(load.connect_concurrency)

    async def connect(client: int, room: int) -> None:
        headers = {}
        if load.cookies:
            headers["Cookie"] = load.cookies[client % len(load.cookies)]
        async with gate:
            began = time.monotonic_ns()
            try:
                sockets[client] = await websockets.connect(
                    load.urls[client % len(load.urls)].format(room=f"bench-{room}"),
                    origin=load.origin,
                    additional_headers=headers,
                    open_timeout=30,
                    max_size=None,
                    ping_interval=None,
                    max_queue=None,
                )
                result.connected += 1
                result.handshakes_ms.append((time.monotonic_ns() - began) / 1e6)
            except Exception as error:  # counted and reported
                result.failed += 1
                result.errors.append(f"connect: {error!r}")

    await asyncio.gather(*(connect(client, room) for client, room in share))
    # Sending starts when every process has connected its clients: `start`
    # waits for all of them and returns the common start time.
    start_ns = await asyncio.to_thread(start)

    async def receive(client: int, room: int, member: int) -> None:
        socket = sockets.get(client)
        if socket is None:
            return
        receiver = receivers[room]
        try:
            async for frame in socket:
                payload = decode(load.protocol, frame)
                if payload is not None:
                    receiver.record(member, payload, time.monotonic_ns())
        except websockets.ConnectionClosed as closed:
            if not stopping.is_set():
                result.errors.append(f"closed: {closed!r}")

    stopping = asyncio.Event()
    readers = [
        asyncio.create_task(receive(client, room, member))
        for room, members in by_room.items()
        for member, client in enumerate(members)
    ]

    async def send_room(room: int, members: list[int]) -> None:
        room_rate = rate.get(room, 0)
        end_ns = start_ns + int(load.duration * NS)
        if room_rate <= 0:  # idle, or another process sends: hold the sockets
            await asyncio.sleep(max(0, (end_ns - time.monotonic_ns()) / NS))
            return
        interval_ns = int(NS / room_rate)
        senders = itertools.cycle([c for c in members if c in sockets] or [None])
        # Rooms start at different points of their interval, so that their
        # messages interleave instead of arriving in bursts.
        phase_ns = int(interval_ns * room / load.rooms)
        seq = 0
        while True:
            due = start_ns + phase_ns + seq * interval_ns
            if due >= end_ns:
                return
            delay = (due - time.monotonic_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            sender = next(senders)
            if sender is None:
                return
            payload = json.dumps({"s": sender, "q": seq, "t": due})
            try:
                frame = encode(load.protocol, payload, sender, seq, load.run_id)
                await sockets[sender].send(frame)
                result.sent += 1
                sent_per_room[room] = sent_per_room.get(room, 0) + 1
            except websockets.ConnectionClosed:
                pass
            seq += 1

    sent_per_room: dict[int, int] = {}
    delay = (start_ns - time.monotonic_ns()) / NS
    if delay > 0:
        await asyncio.sleep(delay)
    began = time.monotonic()
    await asyncio.gather(*(send_room(room, m) for room, m in by_room.items()))
    result.send_seconds = time.monotonic() - began
    await asyncio.sleep(load.drain)
    stopping.set()
    await asyncio.gather(*(s.close() for s in sockets.values()), return_exceptions=True)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for receiver in receivers.values():
        result.merge(receiver.result)
    result.clients = len(share)
    # The room-wide counts are added up by the parent (sent x room size).
    return result, sent_per_room, {room: len(m) for room, m in by_room.items()}


def _process_main(load: Load, share, gate, rate, queue) -> None:
    barrier, go, start_ns = gate

    def start() -> int:
        barrier.wait()
        go.wait()
        return start_ns.value

    try:
        result, sent, members = asyncio.run(run_share(load, share, start, rate))
        queue.put((asdict_result(result), sent, members))
    except Exception as error:  # reported to the parent
        queue.put(({"errors": [f"process failed: {error!r}"]}, {}, {}))


# Result's arrays of samples travel between processes as bytes.
SAMPLE_ARRAYS = ("latencies_ms", "handshakes_ms")


def asdict_result(result: Result) -> dict:
    data = asdict(result)
    for name in SAMPLE_ARRAYS:
        data[name] = getattr(result, name).tobytes()
    return data


def result_from(data: dict) -> Result:
    result = Result()
    for key, value in data.items():
        if key in SAMPLE_ARRAYS:
            getattr(result, key).frombytes(value)
        else:
            setattr(result, key, value)
    return result


# --- the whole load ------------------------------------------------------------------


def default_processes() -> int:
    return min(4, os.cpu_count() or 1)


def run(load: Load) -> Result:
    """Run `load` from several processes; the merged result."""
    processes = load.processes or default_processes()
    clients = [(n, n // load.clients) for n in range(load.rooms * load.clients)]
    shares = [clients[i::processes] for i in range(processes)]
    shares = [share for share in shares if share]
    # One process sends each room's messages (the first that holds clients of
    # it), on one schedule: no bursts from processes starting together.
    sender_of: dict[int, int] = {}
    for index, share in enumerate(shares):
        for _, room in share:
            sender_of.setdefault(room, index)
    room_rate = load.rate / load.rooms
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    # Every process connects its clients, then all start sending together.
    gate = (context.Barrier(len(shares) + 1), context.Event(), context.Value("q", 0))
    workers = [
        context.Process(
            target=_process_main,
            args=(
                load,
                share,
                gate,
                {
                    room: room_rate if sender_of[room] == index else 0
                    for room in {r for _, r in share}
                },
                queue,
            ),
        )
        for index, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    barrier, go, start_ns = gate
    barrier.wait(timeout=120 + len(clients) / 20)
    start_ns.value = time.monotonic_ns() + NS // 2
    go.set()
    total = Result()
    sent_per_room: dict[int, int] = {}
    reported = 0
    deadline = time.monotonic() + load.duration + load.drain + 120 + len(clients) / 50
    while reported < len(workers):
        try:
            data, sent, _members = queue.get(timeout=1)
        except Empty:
            # A worker that died without reporting would leave us waiting forever.
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for worker in workers:
                    worker.kill()
                raise RuntimeError(
                    f"load generator processes failed: {[w.exitcode for w in workers]}"
                ) from None
            continue
        reported += 1
        total.merge(result_from(data))
        for room, count in sent.items():
            sent_per_room[room] = sent_per_room.get(room, 0) + count
    for worker in workers:
        worker.join()
    total.clients = len(clients)
    total.send_seconds = load.duration
    total.expected = sum(count * load.clients for count in sent_per_room.values())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--protocol", choices=["chatroom", "tutorial", "raw"])
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--clients", type=int, default=10, help="per room")
    parser.add_argument("--rate", type=float, default=100, help="messages/s")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--origin")
    parser.add_argument("--cookie", action="append", default=[])
    parser.add_argument("--processes", type=int, default=0)
    args = parser.parse_args()
    load = Load(
        urls=args.url, protocol=args.protocol, rooms=args.rooms, clients=args.clients,
        rate=args.rate, duration=args.duration, cookies=args.cookie,
        origin=args.origin, processes=args.processes,
    )  # fmt: skip
    print(json.dumps(run(load).summary(), indent=2))


if __name__ == "__main__":
    main()
