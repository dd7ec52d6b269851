"""
What a WebSocket handshake costs the server, and whose code spends it: one
Daphne process of the project, and of the tutorial's consumer for comparison,
takes the idle scenario's connect storm (100 handshakes in flight) while
py-spy samples it. Its CPU time per handshake goes to a text file, split by the
package of the innermost Python frame of each sample that holds the GIL (a
thread waiting for the GIL, as the database thread often does while the event
loop runs, is not working).

    python -m bench.profile_handshakes --sockets 4000

`make bench-profile` writes docs/benchmarks/profile-handshakes.txt. With a
fixed number in flight, a handshake waits about in-flight / the server's
handshake rate, so this is where the idle scenario's handshake p99 comes from.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .loadgen import hold
from .measure import ProcessMeter
from .profile import find_py_spy, fresh_start
from .profile_memory import package_table
from .run import idle_load
from .targets import BASE_DIR, Project, Target, Tutorial, raise_open_files_limit

# py-spy names a frame "function (path/to/file.py:line)": the path is relative
# to its root (site-packages, the stdlib or the project), so its first part
# names the package.
FRAME_FILE = re.compile(r"\(([^():]+)\.py:\d+\)$")


def package_of(stack: str) -> str:
    """The package of the innermost Python frame of a py-spy stack."""
    for frame in reversed(stack.split(";")):
        found = FRAME_FILE.search(frame)
        if found:
            return found.group(1).split("/")[0]
    return "other"


def samples_by_package(samples: Path) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        counts[package_of(stack)] += int(count)
    return dict(counts)


def measure(target: Target, sockets: int, logs: Path, py_spy: str) -> dict:
    """Connect `sockets` idle clients to a fresh server under py-spy; its CPU
    per handshake, split by package, and the storm's figures."""
    target.start(logs, clients=sockets)
    try:
        # The first sockets fill the caches and lazy imports of a process.
        with hold(idle_load(target, 100, hold_seconds=1)) as warm:
            warm.release()
        with tempfile.TemporaryDirectory() as scratch:
            samples = Path(scratch) / "samples.txt"
            recorder = subprocess.Popen(
                [py_spy, "record", "--pid", str(target.pids[0]), "--rate", "200",
                 "--format", "raw", "--output", str(samples), "--nonblocking",
                 "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            meter = ProcessMeter(*target.pids)
            cpu_before = meter.cpu_seconds()
            try:
                # Measured up to the last handshake: the sockets' closing is
                # not the handshake's cost.
                with hold(idle_load(target, sockets, hold_seconds=1)) as held:
                    cpu = meter.cpu_seconds() - cpu_before
                    recorder.send_signal(signal.SIGINT)  # py-spy writes what it has
                    recorder.wait(timeout=60)
                    storm = held.release().summary()
            finally:
                if recorder.poll() is None:
                    recorder.kill()
            by_package = samples_by_package(samples)
    finally:
        target.stop()
    if not held.connected:
        sys.exit(f"{target.label}: no socket connected ({held.failed} failed)")
    total = max(1, sum(by_package.values()))
    ms_per_handshake = 1000 * cpu / held.connected
    return {
        "connected": held.connected,
        "failed": held.failed,
        "ms_per_handshake": ms_per_handshake,
        "handshakes_per_s": storm["handshakes_per_s"],
        "handshake_p99_ms": storm["handshake_p99_ms"],
        "by_package": {
            name: ms_per_handshake * count / total for name, count in by_package.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=4000)
    parser.add_argument(
        "--output",
        type=Path,
        default=BASE_DIR / "docs" / "benchmarks" / "profile-handshakes.txt",
    )
    args = parser.parse_args()
    py_spy = find_py_spy(parser)
    raise_open_files_limit()
    logs = fresh_start()
    targets = [
        Project("handshakes-project", "chatroom", "the project"),
        Tutorial("handshakes-tutorial", "tutorial", "the tutorial's consumer"),
    ]
    measured = {
        target.label: measure(target, args.sockets, logs, py_spy) for target in targets
    }
    report = [
        "# py-spy in one Daphne process while idle clients connect, 100 handshakes "
        "in flight, once for the project and once for the tutorial's consumer "
        "(bench/baselines)",
        f"# command: python -m bench.profile_handshakes --sockets {args.sockets}",
        "# each figure: the server's CPU time (user and system, every thread) from "
        "the first handshake to the last, per handshake; split by the package of "
        "the innermost Python frame of py-spy's samples that hold the GIL",
        "",
        "## CPU per handshake",
        *(
            f"{label}: {found['ms_per_handshake']:.2f} ms; "
            f"{found['handshakes_per_s']} handshakes/s, p99 "
            f"{found['handshake_p99_ms']} ms; {found['connected']} sockets "
            f"connected, {found['failed']} failed"
            for label, found in measured.items()
        ),
        "",
        "## By package, ms per handshake",
        *package_table(
            {label: found["by_package"] for label, found in measured.items()},
            unit="ms",
        ),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
