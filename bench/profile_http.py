"""
Where a gunicorn sync worker spends its CPU on the history API, against the
minimal view and the minimal view for a logged-in user: py-spy samples the one
worker while wrk loads it, and the CPU per request of each phase (Django's
session and user loads, the room's lookup, the page the worker kept or else
its query and JSON, gunicorn around Django) goes to a text file.

    python -m bench.profile_http --seconds 10

`make bench-profile` writes docs/benchmarks/profile-http.txt.
"""

from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from .http import HISTORY, MINIMAL, MINIMAL_LOGGED_IN, site, start, warm_up, wrk
from .profile import find_py_spy, fresh_start
from .targets import BASE_DIR, stop_process

ENDPOINTS = {
    "minimal view": MINIMAL,
    "minimal view, logged in": MINIMAL_LOGGED_IN,
    "history API": HISTORY,
}

# A sample is in a phase when its stack holds the phase's frame. The phases
# nest: the session's load happens inside the user's.
DJANGO = "WSGIHandler.__call__ (django/core/handlers/wsgi.py"
PHASES = {
    "Django's handler, middleware and view": DJANGO,
    "  the user's load (auth.get_user)": "get_user (django/contrib/auth/__init__.py",
    "    the session's load": "SessionStore.load (django/contrib/sessions/backends/",
    "  the room's lookup (selectors.room_get)": "room_get (chat/selectors.py",
    # A page the worker served within CHAT_HISTORY_CACHE_SECONDS is kept:
    # then it is neither read nor encoded again.
    "  the kept page (the history cache)": "get (django/core/cache/backends/locmem.py",
    "  the page (selectors.message_list)": "message_list (chat/selectors.py",
    "  the page's JSON (protocol.encode)": "encode (chat/protocol.py",
}
# Each sample stops the worker to read its stack: 250 a second cost it little.
SAMPLE_RATE = 250  # per second


def phase_samples(samples: Path, top: int) -> tuple[int, dict[str, int], list]:
    """All samples; the samples whose stack holds each phase's frame; and the
    frames below Django's handler with their share of the samples."""
    total, counts = 0, dict.fromkeys(PHASES, 0)
    below: collections.Counter[str] = collections.Counter()
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for phase, marker in PHASES.items():
            if marker in stack:
                counts[phase] += int(count)
        frames = stack.split(";")
        handler = next((n for n, f in enumerate(frames) if DJANGO in f), None)
        if handler is not None:
            for frame in set(frames[handler + 1 :]):
                below[frame] += int(count)
    return total, counts, below.most_common(top)


def profile(
    py_spy: str, worker: psutil.Process, url: str, cookie: str, seconds: int, top: int
) -> list[str]:
    """The report's section for one endpoint: the worker's CPU per request
    (its CPU time over the requests wrk made), split by the samples' shares."""
    with tempfile.TemporaryDirectory() as scratch:
        samples = Path(scratch) / "samples.txt"
        recorder = subprocess.Popen(
            [py_spy, "record", "--pid", str(worker.pid), "--rate", str(SAMPLE_RATE),
             "--format", "raw", "--output", str(samples)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            cpu_before = sum(worker.cpu_times()[:2])
            figures = wrk(url, seconds, cookie, connections=4)
            cpu = sum(worker.cpu_times()[:2]) - cpu_before
        finally:
            recorder.send_signal(signal.SIGINT)  # py-spy writes what it has
            said, _ = recorder.communicate(timeout=60)
        if not samples.exists():
            sys.exit(f"py-spy wrote no samples:\n{said}")
        total, phases, frames = phase_samples(samples, top)
    per_request = 1000 * cpu / max(1, figures["requests"])

    def ms(count: int) -> str:
        return f"{per_request * count / max(1, total):5.2f} ms"

    lines = [
        f"{figures['requests']} requests in {seconds} s "
        f"({figures['requests_per_s']}/s), {total} samples",
        f"{per_request:5.2f} ms  per request, all of it",
        f"{ms(total - phases[next(iter(PHASES))])}  gunicorn around Django "
        "(accepting, parsing, writing, logging)",
    ]
    lines += [f"{ms(count)}  {phase}" for phase, count in phases.items()]
    lines += ["", "Busiest frames below Django's handler, by share of the samples:"]
    return lines + [f"{100 * n / max(1, total):5.1f}%  {frame}" for frame, n in frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per endpoint")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--output",
        type=Path,
        default=BASE_DIR / "docs" / "benchmarks" / "profile-http.txt",
    )
    args = parser.parse_args()
    py_spy = find_py_spy(parser)
    logs = fresh_start()
    env, cookie = site(logs)
    # One sync worker keeping its database connection, as in the HTTP table's
    # "gunicorn sync" rows, and not recycled while it is profiled; wrk keeps it
    # busy with 4 connections.
    extra = {
        "DB_CONN_MAX_AGE": "60",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_MAX_REQUESTS": "0",
    }
    command = [str(BASE_DIR / "deploy" / "start-web.sh")]
    server, port = start("gunicorn", command, extra, env, logs / "profile-http.log")
    report = [
        "# py-spy profile of one gunicorn sync worker under wrk (4 connections)",
        f"# command: python -m bench.profile_http --seconds {args.seconds}",
        "# each figure: the worker's CPU time per request, split by the share of "
        f"py-spy's samples ({SAMPLE_RATE} a second) whose stack holds the phase; "
        "nested lines are part of the line above",
    ]
    try:
        warm_up(f"http://127.0.0.1:{port}{MINIMAL}", cookie)
        (worker,) = psutil.Process(server.pid).children()
        for name, path in ENDPOINTS.items():
            url = f"http://127.0.0.1:{port}{path}"
            warm_up(url, cookie)
            section = profile(py_spy, worker, url, cookie, args.seconds, args.top)
            report += ["", f"## {name} ({path})", *section]
    finally:
        stop_process(server)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
