"""
What an idle WebSocket costs in memory, and whose objects it is: tracemalloc in
one Daphne process of the project, and of the tutorial's consumer for
comparison, while it holds idle sockets. The Python allocations per socket go
to a text file, by package and by the line that made them.

    python -m bench.profile_memory --sockets 1000

`make bench-profile` writes docs/benchmarks/profile-memory.txt.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from pathlib import Path

from .loadgen import hold
from .profile import fresh_start
from .run import idle_load
from .targets import (
    BASE_DIR,
    Project,
    Target,
    Tutorial,
    raise_open_files_limit,
)

HOOK = Path(__file__).resolve().parent / "memory_hook"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


def probed(target: Target, directory: Path) -> Target:
    """`target`, its server started with the snapshot hook (memory_hook/)."""
    command = target.command

    def with_hook(port: int) -> tuple[list[str], dict[str, str]]:
        argv, env = command(port)
        return argv, {
            **env,
            "PYTHONPATH": str(HOOK),
            "MEMORY_PROBE_DIR": str(directory),
            "PYTHONTRACEMALLOC": "1",  # the allocating line is enough
        }

    target.command = with_hook
    return target


def snapshot(directory: Path, name: str, timeout: float = 120) -> tracemalloc.Snapshot:
    (directory / f"{name}.request").touch()
    dumped = directory / f"{name}.snapshot"
    deadline = time.monotonic() + timeout
    while not dumped.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server wrote no {dumped.name}")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(str(dumped))


def where(filename: str) -> tuple[str, str]:
    """(the package, the file relative to its root) of an allocation."""
    path = Path(filename)
    for root, prefix in ((SITE_PACKAGES, ""), (BASE_DIR, ""), (STDLIB, "stdlib/")):
        if path.is_relative_to(root):
            relative = path.relative_to(root)
            return prefix + relative.parts[0].removesuffix(".py"), str(relative)
    return "other", filename


def measure(
    target: Target, sockets: int, logs: Path
) -> tuple[int, dict[str, float], list[str]]:
    """The sockets held and, per socket, KB by package and the busiest
    allocation lines. The tutorial's Redis layer may refuse a few sockets of a
    connect storm; the figures are per socket held."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        probed(target, directory).start(logs, clients=sockets)
        try:
            # A first few sockets fill the caches and lazy imports a socket
            # needs once per process, so the difference counts only sockets.
            with hold(idle_load(target, 100, hold_seconds=1)) as warm:
                warm.release()
            before = snapshot(directory, "before")
            with hold(idle_load(target, sockets, hold_seconds=1)) as held:
                after = snapshot(directory, "held")
                connected, failed = held.connected, held.failed
                held.release()
        finally:
            target.stop()
    if not connected:
        sys.exit(f"{target.label}: no socket connected ({failed} failed)")
    per_socket = 1 / 1024 / connected
    by_package: dict[str, float] = {}
    for stat in after.compare_to(before, "filename"):
        package, _ = where(stat.traceback[0].filename)
        by_package[package] = by_package.get(package, 0) + stat.size_diff * per_socket
    lines = []
    for stat in after.compare_to(before, "lineno")[:25]:
        frame = stat.traceback[0]
        _, relative = where(frame.filename)
        lines.append(
            f"{stat.size_diff * per_socket:6.2f} KB  {stat.count_diff / connected:5.1f}"
            f" blocks  {relative}:{frame.lineno}"
        )
    return connected, by_package, lines


def package_table(packages: dict[str, dict[str, float]], unit: str = "KB") -> list[str]:
    """A figure per package (KB per socket, or `unit`), a column per server.
    Packages under 0.1 for every server are summed in one row."""
    servers = list(packages.values())
    shown = {name for found in servers for name, kb in found.items() if kb >= 0.1}
    largest = {name: max(found.get(name, 0) for found in servers) for name in shown}
    order = sorted(shown, key=lambda name: -largest[name])
    rows = {name: [found.get(name, 0) for found in servers] for name in order}
    rows["the rest"] = [
        sum(kb for name, kb in found.items() if name not in shown) for found in servers
    ]
    rows["total"] = [sum(found.values()) for found in servers]
    table = [f"{'package':<22}" + "".join(f"{label:>26}" for label in packages)]
    for name, figures in rows.items():
        table.append(
            f"{name:<22}"
            + "".join(f"{kb:>{25 - len(unit)}.2f} {unit}" for kb in figures)
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument(
        "--output",
        type=Path,
        default=BASE_DIR / "docs" / "benchmarks" / "profile-memory.txt",
    )
    args = parser.parse_args()
    raise_open_files_limit()
    logs = fresh_start()
    targets = [
        Project("memory-project", "chatroom", "the project"),
        Tutorial("memory-tutorial", "tutorial", "the tutorial's consumer"),
    ]
    packages, sections = {}, []
    for target in targets:
        held, by_package, lines = measure(target, args.sockets, logs)
        packages[target.label] = by_package
        total = sum(by_package.values())
        sections += [
            "",
            f"## {target.label}: {total:.1f} KB per socket, {held} sockets held",
            "KB and blocks per socket, by the line that allocated them:",
            *lines,
        ]
    table = package_table(packages)
    report = [
        "# tracemalloc in one Daphne process holding idle sockets, once for the "
        "project and once for the tutorial's consumer (bench/baselines)",
        f"# command: python -m bench.profile_memory --sockets {args.sockets}",
        "# each figure: Python allocations per socket, what the process held with "
        f"{args.sockets} sockets open less what it held before (garbage collected "
        "first); RSS adds the allocator's own overhead",
        "",
        "## By package, KB per socket",
        *table,
        *sections,
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
