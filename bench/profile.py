"""
Where a Daphne process of the project spends its time under load: while the
load generator's clients send, py-spy samples the process, and a text file
gets the busiest frames of its event loop thread and of its database thread,
and who used the machine's cores meanwhile (Daphne, its clients, PostgreSQL,
Redis, py-spy).

    python -m bench.profile                       # fan-out, 200 clients, 4,000/s
    python -m bench.profile --rooms 100 --clients 10 --rate 400

`make bench-profile` writes docs/benchmarks/profile-fanout.txt and
profile-rooms.txt.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from .loadgen import START_DELAY, Holding, Load, hold
from .measure import MachineMeter
from .run import RESULTS
from .targets import BASE_DIR, BIN, Project, fresh_database

# A sample belongs to the thread whose stack holds all of these frames.
THREADS = {
    "event loop": ("AsyncioSelectorReactor.run",),
    "database (sync_to_async)": ("SyncToAsync.thread_handler",),
    # chat.outbox's task, which sends the broadcasts that the database thread
    # hands it (its loop's own frames are uvloop's, in C).
    "broadcasts (chat.outbox)": ("Outbox._send_all",),
}


def machine_meter(
    target: Project, holding: Holding, recorder: subprocess.Popen
) -> MachineMeter:
    """Who uses the machine's CPU: the Daphne process, its clients, the
    database and Redis it talks to, and py-spy itself."""
    daphne = set(target.pids)
    clients = set(holding.pids)

    def named(*names: str):
        return lambda process: process.name() in names

    return MachineMeter(
        {
            "Daphne": lambda process: process.pid in daphne,
            "load generator": lambda process: process.pid in clients,
            "PostgreSQL": named("postgres", "postmaster"),
            "Redis": named("redis-server"),
            "py-spy": lambda process: process.pid == recorder.pid,
        }
    )


def busiest(samples: Path, markers: tuple[str, ...], top: int) -> tuple[int, list[str]]:
    """Frames by the share of the thread's samples whose stack holds them."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not all(marker in stack for marker in markers):
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            counts[frame] += int(count)
    share = 100 / max(total, 1)
    lines = [f"{n * share:5.1f}%  {frame}" for frame, n in counts.most_common(top)]
    return total, lines


def find_py_spy(parser: argparse.ArgumentParser) -> str:
    py_spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if py_spy is None:
        parser.error("py-spy is missing: `make install-dev` installs it")
    return py_spy


def fresh_start() -> Path:
    """An empty benchmark database, and the folder for the servers' logs."""
    fresh_database()
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--clients", type=int, default=200, help="per room")
    parser.add_argument("--rate", type=float, default=20, help="messages/s, all rooms")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--output", type=Path, default=BASE_DIR / "docs" / "benchmarks" / "profile.txt"
    )
    args = parser.parse_args()
    py_spy = find_py_spy(parser)
    logs = fresh_start()
    target = Project("profile", "chatroom", "chatroom, 1 Daphne process")
    target.start(logs, clients=args.rooms * args.clients)
    with tempfile.TemporaryDirectory() as scratch:
        samples = Path(scratch) / "samples.txt"
        load = Load(
            urls=target.urls, protocol=target.protocol, rooms=args.rooms,
            clients=args.clients, rate=args.rate, duration=args.seconds,
            cookies=target.cookies, origin=target.origin,
        )  # fmt: skip
        try:
            with hold(load) as holding:
                time.sleep(START_DELAY)  # the clients are in; sending starts
                recorder = subprocess.Popen(
                    [py_spy, "record", "--pid", str(target.pids[0]), "--rate",
                     "200", "--format", "raw", "--output", str(samples),
                     "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                try:
                    with machine_meter(target, holding, recorder) as machine:
                        time.sleep(args.seconds)
                finally:
                    recorder.send_signal(signal.SIGINT)  # py-spy writes what it has
                    recorder.wait(timeout=60)
                summary = holding.release().summary()
        finally:
            target.stop()
        report = [
            f"# py-spy profile of one Daphne process: {args.rooms} room(s) x "
            f"{args.clients} clients, {args.rate:g} messages/s for {args.seconds:g} s",
            f"# command: python -m bench.profile --rooms {args.rooms} --clients "
            f"{args.clients} --rate {args.rate:g} --seconds {args.seconds:g}",
            "# load: " + ", ".join(
                f"{key} {summary[key]}"
                for key in ("connected", "delivered", "lost", "p50_ms", "p99_ms")
            ),
            "# sampled while the clients send (not while they connect or drain)",
            "",
            f"## the machine's {psutil.cpu_count()} cores: "
            f"{machine.busy_percent:g}% of one core busy",
            *(
                f"{percent:6.1f}%  {name}"
                for name, percent in sorted(
                    machine.percent.items(), key=lambda item: -item[1]
                )
            ),
            f"{machine.interrupts_percent:6.1f}%  interrupts (the sockets' packets)",
            "",
            "# each line below: the share of the thread's samples whose stack "
            "holds the frame",
        ]  # fmt: skip
        for thread, markers in THREADS.items():
            total, lines = busiest(samples, markers, args.top)
            report += ["", f"## {thread} thread: {total} samples", *lines]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
