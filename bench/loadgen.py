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

Two extras, off unless asked for (bench/run.py uses neither), serve the load
tests (lab/test_load*.py) and the soak (bench/soak.py):
`Load.track_ids` makes every chatroom client keep the ids it holds and fill
the gaps it notices with `resume`, as the room page does; `hold()` keeps the
clients connected until the caller releases them or kills their processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from queue import Empty

import websockets

NS = 1_000_000_000
# Load.track_ids: how much longer than `drain` deliveries and resumes may take.
TRACK_GRACE = 30
# Seconds a chatroom socket may take from its handshake to its hello frame.
JOIN_TIMEOUT = 30
# Seconds from the last client's connection to the first message sent.
START_DELAY = 0.5


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
    # The chatroom protocol only: every client records the id of each message
    # it holds, live or replayed, and resumes after a gap that a live
    # message's prev_id reveals (docs/protocol.md); each room's sender ends
    # with one more message, whose prev_id shows a gap at the tail. The
    # records come back in Result.tracks, to compare with what was stored.
    track_ids: bool = False


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
    # From a process's first connect to its last handshake; processes connect
    # side by side, so the merged figure is the longest.
    connect_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)  # Tracker.record()s

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
        self.connect_seconds = max(self.connect_seconds, other.connect_seconds)
        self.errors += other.errors[:5]
        self.tracks += other.tracks

    def summary(self) -> dict:
        ordered = sorted(self.latencies_ms)
        pick = partial(quantile, ordered)

        seconds = self.send_seconds or 1  # the offered duration (see run())
        handshakes = sorted(self.handshakes_ms)
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
            "handshake_p50_ms": quantile(handshakes, 0.50),
            "handshake_p99_ms": quantile(handshakes, 0.99),
            # With a fixed number in flight, a handshake waits about
            # in-flight / this rate: the server's throughput sets the latency.
            "handshakes_per_s": (
                round(self.connected / self.connect_seconds)
                if self.connect_seconds
                else None
            ),
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


async def joined(socket: websockets.ClientConnection) -> dict:
    """A chatroom socket's hello frame: the server has put the socket in its
    room (it accepts the handshake first, then looks the room up and joins
    it). Raises if the server refuses the socket or takes JOIN_TIMEOUT."""
    async with asyncio.timeout(JOIN_TIMEOUT):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "hello":
                return frame
            if frame.get("type") == "error":
                raise RuntimeError(f"refused: {frame.get('code')}")


class Tracker:
    """What one chatroom client holds, by message id (Load.track_ids). A live
    message whose prev_id the client does not hold reveals a gap, filled by
    `resume` from the last id before it, as the room page does."""

    def __init__(self, room: int, client: int):
        self.room, self.client = room, client
        self.live: set[int] = set()  # ids first received live (a broadcast)
        self.resumed: set[int] = set()  # ids first received replayed by resume
        self.duplicated = 0  # live frames of an id already received live
        self.redundant = 0  # frames of an id already held the other way
        self.gaps = 0  # gaps noticed from a prev_id
        self.resumes = 0  # resume requests sent, has_more pages included
        self.errors: dict[str, int] = {}  # error frames by code
        self.joined_after: int | None = None  # the room's last id at hello
        self.resuming = False
        self._again = False  # another gap was noticed while resuming
        self._contiguous = 0  # every id of the room up to this one is held
        self._next: dict[int, int] = {}  # prev_id -> id, from live frames

    def holds(self, message_id: int) -> bool:
        return message_id in self.live or message_id in self.resumed

    def on_frame(self, frame: dict) -> int | None:
        """Take one frame; the `after` of a resume to send, if one is due."""
        kind = frame.get("type")
        if kind == "hello":
            self.joined_after = self._contiguous = frame.get("last_id") or 0
        elif kind == "message":
            return self._on_message(frame)
        elif kind == "resume_done":
            self.resuming = False
            self._advance(frame["last_id"])
            if frame["has_more"]:
                return self._resume(frame["last_id"])
            if self._again:
                self._again = False
                return self._resume(self._contiguous)
        elif kind == "error":
            code = str(frame.get("code"))
            self.errors[code] = self.errors.get(code, 0) + 1
            if code == "resume_failed":  # nothing more comes for that request
                self.resuming = False
        return None

    def _on_message(self, frame: dict) -> int | None:
        message_id = frame["id"]
        if "prev_id" not in frame:  # replayed by a resume, in id order
            if self.holds(message_id):
                self.redundant += 1
            else:
                self.resumed.add(message_id)
            self._advance(message_id)
            return None
        if message_id in self.live:
            self.duplicated += 1
        elif message_id in self.resumed:
            self.redundant += 1
        else:
            self.live.add(message_id)
        prev = frame["prev_id"]
        if prev is not None:
            self._next[prev] = message_id
        if prev is None or prev <= self._contiguous:
            self._advance(message_id)
        elif not self.holds(prev):
            self.gaps += 1
            return self._resume(self._contiguous)
        return None

    def _resume(self, after: int) -> int | None:
        if self.resuming:  # the running replay ends first, then one more
            self._again = True
            return None
        self.resuming = True
        self.resumes += 1
        return after

    def _advance(self, message_id: int) -> None:
        last = max(self._contiguous, message_id)
        while last in self._next:
            last = self._next[last]
        self._contiguous = last

    def record(self) -> dict:
        return {
            "room": self.room, "client": self.client,
            "joined_after": self.joined_after,
            "live": sorted(self.live), "resumed": sorted(self.resumed),
            "duplicated": self.duplicated, "redundant": self.redundant,
            "gaps": self.gaps, "resumes": self.resumes, "errors": self.errors,
        }  # fmt: skip


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


async def run_share(
    load: Load,
    share: list[tuple[int, int]],
    start,
    rate: dict,
    connected: Callable[[Result], None] | None = None,
    hold: Callable[[], None] | None = None,
):
    """Connect this process's clients, send this process's part of each room's
    messages on schedule from start_ns, collect deliveries, report. With
    `connected`, tell it the counts once every handshake is done; with `hold`,
    keep the sockets open until it returns (it blocks: run in a thread)."""
    result = Result(clients=len(share))
    by_room: dict[int, list[int]] = {}
    for client, room in share:
        by_room.setdefault(room, []).append(client)
    receivers = {room: Receiver(len(members)) for room, members in by_room.items()}
    sockets: dict[int, websockets.ClientConnection] = {}
    hellos: dict[int, dict] = {}  # the chatroom protocol's, for the trackers
    gate = asyncio.Semaphore(load.connect_concurrency)

    async def connect(client: int, room: int) -> None:
        headers = {}
        if load.cookies:
            headers["Cookie"] = load.cookies[client % len(load.cookies)]
        async with gate:
            began = time.monotonic_ns()
            try:
                socket = await websockets.connect(
                    load.urls[client % len(load.urls)].format(room=f"bench-{room}"),
                    origin=load.origin,
                    additional_headers=headers,
                    open_timeout=30,
                    max_size=None,
                    ping_interval=None,
                    max_queue=None,
                )
                result.handshakes_ms.append((time.monotonic_ns() - began) / 1e6)
            except Exception as error:  # counted and reported
                result.failed += 1
                result.errors.append(f"connect: {error!r}")
                return
        # Outside the gate: the handshakes in flight stay what the load says.
        try:
            if load.protocol == "chatroom":
                hellos[client] = await joined(socket)
        except Exception as error:
            result.failed += 1
            result.errors.append(f"join: {error!r}")
            await socket.close()
            return
        sockets[client] = socket
        result.connected += 1

    connecting = time.monotonic()
    await asyncio.gather(*(connect(client, room) for client, room in share))
    result.connect_seconds = time.monotonic() - connecting
    if connected is not None:
        connected(result)
    # Sending starts when every process has connected its clients: `start`
    # waits for all of them and returns the common start time.
    start_ns = await asyncio.to_thread(start)

    async def receive(client: int, room: int, member: int) -> None:
        socket = sockets.get(client)
        if socket is None:
            return
        receiver = receivers[room]
        tracker = trackers.get(client)
        try:
            async for frame in socket:
                if tracker is not None:
                    await track(socket, tracker, receiver, member, frame)
                    continue
                payload = decode(load.protocol, frame)
                if payload is not None:
                    receiver.record(member, payload, time.monotonic_ns())
        except websockets.ConnectionClosed as closed:
            if not stopping.is_set():
                result.errors.append(f"closed: {closed!r}")

    async def track(socket, tracker: Tracker, receiver, member, frame) -> None:
        nonlocal last_frame
        last_frame = time.monotonic()
        data = json.loads(frame)
        if data.get("type") == "message" and "prev_id" in data:
            # Latency and delivery counts from live broadcasts only.
            receiver.record(member, data["body"], time.monotonic_ns())
        after = tracker.on_frame(data)
        if after is not None:
            await socket.send(json.dumps({"type": "resume", "after": after}))

    async def quiet(seconds: float, deadline: float) -> None:
        """Until no frame came for `seconds` and no resume runs, or deadline:
        a server that falls behind still delivers, and its deliveries count."""
        while time.monotonic() < deadline:
            if time.monotonic() - last_frame >= seconds and not any(
                t.resuming for t in trackers.values()
            ):
                return
            await asyncio.sleep(0.1)

    last_frame = time.monotonic()
    trackers = (
        {client: Tracker(room, client) for client, room in share if client in sockets}
        if load.track_ids
        else {}
    )
    for client, tracker in trackers.items():
        tracker.on_frame(hellos[client])
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
                break
            delay = (due - time.monotonic_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            sender = next(senders)
            if sender is None:
                return
            await send(room, sender, seq, due)
            seq += 1
        if load.track_ids:
            # The last word: its prev_id shows every client a gap at the tail.
            await send(room, next(senders), seq, time.monotonic_ns())

    async def send(room: int, sender: int | None, seq: int, due: int) -> None:
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

    sent_per_room: dict[int, int] = {}
    delay = (start_ns - time.monotonic_ns()) / NS
    if delay > 0:
        await asyncio.sleep(delay)
    began = time.monotonic()
    await asyncio.gather(*(send_room(room, m) for room, m in by_room.items()))
    result.send_seconds = time.monotonic() - began
    if trackers:
        await quiet(load.drain, deadline=time.monotonic() + load.drain + TRACK_GRACE)
    else:
        await asyncio.sleep(load.drain)
    if hold is not None:
        await asyncio.to_thread(hold)
    stopping.set()
    await asyncio.gather(*(s.close() for s in sockets.values()), return_exceptions=True)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for receiver in receivers.values():
        result.merge(receiver.result)
    result.tracks = [tracker.record() for tracker in trackers.values()]
    result.clients = len(share)
    # The room-wide counts are added up by the parent (sent x room size).
    return result, sent_per_room, {room: len(m) for room, m in by_room.items()}


def _process_main(load: Load, share, gate, rate, queue, holding=None) -> None:
    barrier, go, start_ns = gate

    def start() -> int:
        barrier.wait()
        go.wait()
        return start_ns.value

    connected = hold = None
    if holding is not None:  # see hold()
        release, ready = holding

        def connected(result: Result) -> None:
            ready.put((result.connected, result.failed, result.errors[:5]))

        hold = release.wait

    try:
        result, sent, members = asyncio.run(
            run_share(load, share, start, rate, connected, hold)
        )
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


class _Processes:
    """The processes of one load, each holding its share of the clients."""

    def __init__(self, load: Load, holding: bool = False):
        self.load = load
        processes = load.processes or default_processes()
        self.clients = [
            (n, n // load.clients) for n in range(load.rooms * load.clients)
        ]
        shares = [self.clients[i::processes] for i in range(processes)]
        shares = [share for share in shares if share]
        # One process sends each room's messages (the first that holds clients of
        # it), on one schedule: no bursts from processes starting together.
        sender_of: dict[int, int] = {}
        for index, share in enumerate(shares):
            for _, room in share:
                sender_of.setdefault(room, index)
        room_rate = load.rate / load.rooms
        context = multiprocessing.get_context("spawn")
        self.queue = context.Queue()
        # Every process connects its clients, then all start sending together.
        self.gate = (
            context.Barrier(len(shares) + 1),
            context.Event(),
            context.Value("q", 0),
        )
        # hold(): each process reports its handshakes on `ready`, then keeps
        # its sockets until `release` is set.
        self.holding = (context.Event(), context.Queue()) if holding else None
        self.workers = [
            context.Process(
                target=_process_main,
                args=(
                    load,
                    share,
                    self.gate,
                    {
                        room: room_rate if sender_of[room] == index else 0
                        for room in {r for _, r in share}
                    },
                    self.queue,
                    self.holding,
                ),
            )
            for index, share in enumerate(shares)
        ]

    def start(self) -> None:
        """Start the processes; return once every client has connected (or
        failed to) and the common start time is set."""
        for worker in self.workers:
            worker.start()
        barrier, go, start_ns = self.gate
        barrier.wait(timeout=120 + len(self.clients) / 20)
        start_ns.value = time.monotonic_ns() + int(START_DELAY * NS)
        go.set()

    def collect(self, timeout: float) -> Result:
        """Wait for every process's report; the merged result."""
        load = self.load
        total = Result()
        sent_per_room: dict[int, int] = {}
        reported = 0
        deadline = time.monotonic() + timeout
        while reported < len(self.workers):
            try:
                data, sent, _members = self.queue.get(timeout=1)
            except Empty:
                # A worker that died without reporting would leave us waiting forever.
                dead = [w for w in self.workers if w.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        "load generator processes failed: "
                        f"{[w.exitcode for w in self.workers]}"
                    ) from None
                continue
            reported += 1
            total.merge(result_from(data))
            for room, count in sent.items():
                sent_per_room[room] = sent_per_room.get(room, 0) + count
        for worker in self.workers:
            worker.join()
        total.clients = len(self.clients)
        total.send_seconds = load.duration
        total.expected = sum(count * load.clients for count in sent_per_room.values())
        return total

    def kill(self) -> None:
        for worker in self.workers:
            if worker.is_alive():
                worker.kill()
        for worker in self.workers:
            if worker.pid is not None:
                worker.join(timeout=30)


def run(load: Load) -> Result:
    """Run `load` from several processes; the merged result."""
    processes = _Processes(load)
    processes.start()
    return processes.collect(
        load.duration + load.drain + 120 + len(processes.clients) / 50
    )


@dataclass
class Holding:
    """The clients of hold(), connected and held open."""

    pids: list[int]  # of the load generator's processes
    connected: int
    failed: int
    errors: list[str]
    release: Callable[[], Result]  # close every socket at once; the result
    kill: Callable[[], None]  # SIGKILL the processes: the sockets just drop


@contextlib.contextmanager
def hold(load: Load) -> Iterator[Holding]:
    """Connect the load's clients from several processes, send as run() does
    (nothing with rate 0), then keep every socket open until the caller
    calls release(), which closes them all at once in every process, or
    kill(). The processes are killed on the way out if still running."""
    processes = _Processes(load, holding=True)
    try:
        processes.start()
        _release, ready = processes.holding
        connected, failed, errors = 0, 0, []
        for _ in processes.workers:
            # Each was put before the barrier, which start() has passed.
            # As run() waits: a minute, and more for many handshakes.
            count, failures, some = ready.get(timeout=60 + len(processes.clients) / 50)
            connected += count
            failed += failures
            errors += some

        def release() -> Result:
            _release.set()
            return processes.collect(load.duration + load.drain + 120)

        yield Holding(
            pids=[worker.pid for worker in processes.workers],
            connected=connected,
            failed=failed,
            errors=errors[:5],
            release=release,
            kill=processes.kill,
        )
    finally:
        processes.kill()


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
