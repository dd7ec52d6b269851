"""
Where a Daphne process of the project spends its time under load: py-spy
samples it while the load generator runs a scenario, and the busiest frames of
its event loop thread and of its database thread go to a text file.

    python -m bench.profile                       # fan-out, 200 clients, 4,000/s
    python -m bench.profile --rooms 100 --clients 10 --rate 200

`make bench-profile` writes docs/benchmarks/profile-fanout.txt.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .loadgen import Load, run
from .run import RESULTS
from .targets import BASE_DIR, BIN, Project, fresh_database

# A sample belongs to the thread whose stack holds this frame.
THREADS = {
    "event loop": "AsyncioSelectorReactor.run",
    "database (sync_to_async)": "SyncToAsync.thread_handler",
}


def busiest(samples: Path, marker: str, top: int) -> tuple[int, list[str]]:
    """Frames by the share of the thread's samples whose stack holds them."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if marker not in stack:
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
        recorder = subprocess.Popen(
            [py_spy, "record", "--pid", str(target.pids[0]), "--rate", "200",
             "--format", "raw", "--output", str(samples), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            load = Load(
                urls=target.urls, protocol=target.protocol, rooms=args.rooms,
                clients=args.clients, rate=args.rate, duration=args.seconds,
                cookies=target.cookies, origin=target.origin,
            )  # fmt: skip
            summary = run(load).summary()
        finally:
            recorder.send_signal(signal.SIGINT)  # py-spy writes what it has
            recorder.wait(timeout=60)
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
            "# each line: the share of the thread's samples whose stack holds the "
            "frame (connecting and draining included)",
        ]  # fmt: skip
        for thread, marker in THREADS.items():
            total, lines = busiest(samples, marker, args.top)
            report += ["", f"## {thread} thread: {total} samples", *lines]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
