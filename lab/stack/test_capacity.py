"""
Many WebSockets through the stack's nginx at once: STACK_SOCKETS (10,000 by
default) logged-in clients open a chat socket each over TLS, through nginx,
onto the Daphne replicas, and all of them are held open together. nginx's
worker_connections, its workers' open-file limit and compose's ulimits are
what let them through (nginx's stock 1,024 or 768 connections a worker reset
the rest). The users are seeded inside the stack: signing up hundreds would
hit nginx's limit on auth posts.
"""

import json
import os
import subprocess
import time
from pathlib import Path

from bench.loadgen import Load, hold
from lab.load_rig import open_files_limit

from .actions import ws_url
from .stack import PROJECT_NAME, service_of

SOCKETS = int(os.environ.get("STACK_SOCKETS", "10000"))
PER_ROOM = 10
# Fewer sockets per user than CHAT_MAX_SOCKETS_PER_USER (20).
PER_USER = 16
BASE_DIR = Path(__file__).resolve().parents[2]
DAPHNE_PORT = 8001
# A Daphne socket in /proc/net/tcp: local port 8001, state 01 (established).
COUNT_ESTABLISHED = f"""
count = 0
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        count += local.endswith(":{DAPHNE_PORT:04X}") and state == "01"
print(count)
"""


def seed(stack, users: int, rooms: int) -> list[str]:
    """Users, rooms bench-0... (the load generator's names) and a logged-in
    session each, made by the benchmarks' own seeding (bench/project.py, not in
    the image: its source is piped in) inside a web container; each session's
    Cookie header."""
    source = (BASE_DIR / "bench" / "project.py").read_bytes()
    output = stack.run_bytes(
        "exec", "-T", "-e", f"DJANGO_SETTINGS_MODULE={PROJECT_NAME}.settings",
        "web", "python", "-", "--users", str(users), "--rooms", str(rooms),
        stdin=source,
    )  # fmt: skip
    return json.loads(output.decode().strip().splitlines()[-1])


def established(stack) -> dict[str, int]:
    """Open sockets on each Daphne replica."""
    counts = {}
    for container in stack.containers("ws"):
        result = subprocess.run(
            ["docker", "exec", container["Id"], "python", "-c", COUNT_ESTABLISHED],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        counts[container["Name"].lstrip("/")] = int(result.stdout)
    return counts


def memory(stack) -> dict[str, str]:
    """What nginx and each Daphne replica use, as `docker stats` says."""
    names = [
        container["Name"].lstrip("/")
        for container in stack.containers()
        if service_of(container) in ("nginx", "ws")
    ]
    result = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}",
         *names],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_ten_thousand_sockets_through_nginx_all_connect(stack, figure, monkeypatch):
    open_files_limit()
    # The load generator's processes trust the stack's self-signed certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.ca_file))
    rooms = SOCKETS // PER_ROOM
    cookies = seed(stack, users=-(-SOCKETS // PER_USER), rooms=rooms)
    baseline = sum(established(stack).values())
    load = Load(
        urls=[ws_url(stack, "{room}")], protocol="chatroom", rooms=rooms,
        clients=PER_ROOM, rate=0, duration=0, drain=0, cookies=cookies,
        origin=stack.origin, connect_concurrency=25,
    )  # fmt: skip
    label = f"{SOCKETS:,} sockets through nginx"
    began = time.monotonic()
    with hold(load) as held:
        connect_seconds = round(time.monotonic() - began, 1)
        per_replica = established(stack)
        figure(f"{label}: connected / failed", f"{held.connected} / {held.failed}")
        figure(f"{label}: seconds until all had their hello", connect_seconds)
        figure(f"{label}: sockets on each Daphne replica", per_replica)
        figure(f"{label}: memory of nginx and each ws replica", memory(stack))
        assert (held.connected, held.failed) == (SOCKETS, 0), held.errors
        assert sum(per_replica.values()) - baseline == SOCKETS
        result = held.release()
    assert result.failed == 0, result.errors[:5]
    nginx_log = stack.logs("nginx", tail=100_000)
    for trouble in ("worker_connections are not enough", "Too many open files"):
        assert trouble not in nginx_log
    # The sockets' consumers have finished before the next test starts.
    deadline = time.monotonic() + 120
    while sum(established(stack).values()) > baseline:
        assert time.monotonic() < deadline, established(stack)
        time.sleep(1)
