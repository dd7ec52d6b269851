"""
What a server costs while it works: CPU (percent of one core) and peak memory
of a process and its children, sampled in a thread; Redis's own CPU and
memory from INFO; and the whole machine's CPU, split by who used it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import psutil
import redis


class ProcessMeter:
    """Samples process trees (a server's processes and their children) every
    `interval` seconds between start and stop; figures are their sums."""

    def __init__(self, *pids: int, interval: float = 0.2):
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak_rss = 0
        self._cpu_start = 0.0
        self._cpu_end = 0.0
        self._wall = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        processes = []
        for root in self.roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                processes += [root, *root.children(recursive=True)]
        return processes

    def cpu_seconds(self) -> float:
        """User and system CPU time the processes have used so far."""
        total = 0.0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        # Children that exited (gunicorn recycles its workers) took their CPU
        # time to their parent's account once it reaped them.
        for root in self.roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = root.cpu_times()
                total += times.children_user + times.children_system
        return total

    def rss(self) -> int:
        total = 0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, self.rss())

    def __enter__(self) -> ProcessMeter:
        self.peak_rss = self.rss()
        self._cpu_start = self.cpu_seconds()
        self._wall = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._cpu_end = self.cpu_seconds()
        self._wall = time.monotonic() - self._wall

    def summary(self) -> dict:
        return {
            "cpu_percent": round(100 * (self._cpu_end - self._cpu_start) / self._wall),
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
        }


class RedisMeter:
    """Redis's CPU (from INFO cpu) and peak memory over a window."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url)

    def _cpu(self) -> float:
        info = self.client.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    def __enter__(self) -> RedisMeter:
        self._cpu_start = self._cpu()
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._cpu_end = self._cpu()
        self._wall = time.monotonic() - self._wall
        self._memory = self.client.info("memory")["used_memory_peak"]

    def summary(self) -> dict:
        return {
            "redis_cpu_percent": round(
                100 * (self._cpu_end - self._cpu_start) / self._wall
            ),
            "redis_peak_mb": round(self._memory / 2**20, 1),
        }


class MachineMeter:
    """The whole machine's CPU over a window, split by who used it: each
    process is put in the first group whose test it passes, or "other".

    `groups` maps a name to a test of a psutil.Process. A process that starts
    or ends inside the window is left out of the groups; the machine's busy
    time (from /proc/stat) counts everything."""

    def __init__(self, groups: dict[str, Callable[[psutil.Process], bool]]):
        self.groups = groups
        self._start: dict[int, float] = {}
        self._busy_start = self._interrupts_start = self._wall = 0.0
        self.percent: dict[str, float] = {}
        self.busy_percent = self.interrupts_percent = 0.0

    def _group(self, process: psutil.Process) -> str:
        for name, test in self.groups.items():
            with contextlib.suppress(psutil.Error):
                if test(process):
                    return name
        return "other"

    @staticmethod
    def _cpu_by_process() -> dict[int, tuple[psutil.Process, float]]:
        seen = {}
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                seen[process.pid] = (process, times.user + times.system)
        return seen

    @staticmethod
    def _busy_and_interrupts() -> tuple[float, float]:
        # Not idle, not waiting for a disk, not taken by the hypervisor (steal).
        times = psutil.cpu_times()
        interrupts = getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
        return times.user + times.nice + times.system + interrupts, interrupts

    def __enter__(self) -> MachineMeter:
        self._start = {pid: cpu for pid, (_, cpu) in self._cpu_by_process().items()}
        self._busy_start, self._interrupts_start = self._busy_and_interrupts()
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.monotonic() - self._wall
        busy, interrupts = self._busy_and_interrupts()
        used: dict[str, float] = dict.fromkeys([*self.groups, "other"], 0.0)
        for pid, (process, cpu) in self._cpu_by_process().items():
            if pid in self._start:
                used[self._group(process)] += max(0.0, cpu - self._start[pid])
        self.percent = {name: round(100 * s / wall, 1) for name, s in used.items()}
        self.busy_percent = round(100 * (busy - self._busy_start) / wall, 1)
        # The kernel's work for no process in particular: receiving and sending
        # the sockets' packets, mostly.
        self.interrupts_percent = round(
            100 * (interrupts - self._interrupts_start) / wall, 1
        )
