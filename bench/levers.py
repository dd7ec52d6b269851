"""
What each speed lever of docs/levers.md gains, measured the same way for each:
one Daphne process (deploy/start-ws.sh, every lever on) against the same run
with that one lever off, in interleaved rounds, under one room of clients
sending at a fixed rate. For each run, Daphne's CPU per message while the
clients send, and the delivery latency.

    python -m bench.levers                    # 200 clients, 20 messages/s, 8 s
    python -m bench.levers --rounds 4 --output docs/benchmarks/levers.txt

`make bench-levers` writes docs/benchmarks/levers.txt. The memory lever's gain
(handshakes during a connect storm, memory after waves of clients) shows in the
idle and churn scenarios of `make bench`, not here; the correctness levers
have no speed to gain and are measured here for what they cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from levers import SWITCHES

from .loadgen import START_DELAY, Load, hold
from .measure import ProcessMeter
from .profile import fresh_start
from .targets import BASE_DIR, Project

LEVERS = ("uvloop", "write_at_once", "dispatch", "skip_db_hop", "consumer_cleanup")


def one_run(logs: Path, args, off: str | None) -> dict[str, float]:
    """One Daphne process with every lever on but `off`, under the load."""
    variables = {SWITCHES[off]: "off"} if off else {}
    target = Project("levers", "chatroom", "chatroom", variables=variables)
    target.start(logs, clients=args.clients)
    try:
        load = Load(
            urls=target.urls, protocol=target.protocol, rooms=1,
            clients=args.clients, rate=args.rate, duration=args.seconds,
            cookies=target.cookies, origin=target.origin,
        )  # fmt: skip
        meter = ProcessMeter(*target.pids)
        with hold(load) as holding:
            time.sleep(START_DELAY)  # the clients are in; sending starts
            began = meter.cpu_seconds()
            time.sleep(args.seconds)
            cpu = meter.cpu_seconds() - began
            summary = holding.release().summary()
    finally:
        target.stop()
    messages = max(summary["sent"], 1)
    return {
        "cpu_ms_per_message": 1000 * cpu / messages,
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "lost": summary["lost"],
    }


def spread(values: list[float]) -> str:
    return (
        f"{min(values):.2f}-{max(values):.2f} (median {statistics.median(values):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="messages/s")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levers", nargs="*", default=list(LEVERS))
    parser.add_argument(
        "--output", type=Path, default=BASE_DIR / "docs" / "benchmarks" / "levers.txt"
    )
    args = parser.parse_args()
    logs = fresh_start()
    configurations = [None, *args.levers]
    runs: dict[str | None, list[dict]] = {name: [] for name in configurations}
    for round_number in range(args.rounds):
        for off in configurations:
            runs[off].append(one_run(logs, args, off))
            print(f"round {round_number + 1}, off: {off or 'none'}: {runs[off][-1]}")
    report = [
        f"# python -m bench.levers --clients {args.clients} --rate {args.rate:g} "
        f"--seconds {args.seconds:g} --rounds {args.rounds}",
        f"# one Daphne process (deploy/start-ws.sh), one room of {args.clients} "
        f"clients, {args.rate:g} messages/s ({args.rate * args.clients:g} "
        "deliveries/s); each row: every lever on but the one named, "
        f"{args.rounds} interleaved rounds; Daphne's CPU while the clients send",
        "",
        "| lever off | CPU ms per message | p50 ms | p99 ms | lost |",
        "|---|---|---|---|---|",
    ]
    for off in configurations:
        rows = runs[off]
        report.append(
            f"| {off or '(none: every lever on)'} "
            f"| {spread([r['cpu_ms_per_message'] for r in rows])} "
            f"| {spread([r['p50_ms'] for r in rows])} "
            f"| {spread([r['p99_ms'] for r in rows])} "
            f"| {sum(r['lost'] for r in rows)} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
