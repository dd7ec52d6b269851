"""
The soak's short form (`make soak` runs it for minutes or hours): about a
minute of clients connecting, chatting and leaving in cycles against one
Daphne process, whose memory, file descriptors and channel-layer
subscriptions in Redis stay flat after warm-up (bench/soak.py says how flat).
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection

from bench.soak import verdict

BASE_DIR = Path(__file__).resolve().parents[2]
# Seconds of cycles, each with 3 s of chat: six or so, three of them warm-up;
# with start-up and the last checks, about a minute.
SECONDS = 40


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_short_soak_stays_flat(tmp_path, figure):
    db = connection.settings_dict
    database = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}"
    )
    output = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration", str(SECONDS),
         "--cycle-seconds", "3",
         "--output", str(output), "--log-dir", str(tmp_path),
         "--database-url", database, "--redis-url", settings.REDIS_URL],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert output.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())
    checks, cycles = report["checks"], report["cycles"]

    figure(
        "soak: cycles (warm-up) of clients x seconds of chat",
        f"{len(cycles)} ({report['parameters']['warmup']}) of "
        f"{cycles[0]['load']['connected']} x "
        f"{report['parameters']['cycle_seconds']}",
    )
    figure("soak: Daphne RSS (MB) after each cycle", checks["rss"]["values"])
    figure(
        "soak: Daphne fds after each cycle (without its pooled connections)",
        f"{checks['fds']['values']} ({checks['fds']['without_pools']})",
    )
    figure(
        "soak: subscriptions in Redis after each cycle (baseline)",
        f"{checks['subscriptions']['values']} ({checks['subscriptions']['baseline']})",
    )
    figure(
        "soak: broadcasts lost / clients that failed to connect",
        f"{checks['delivery']['lost']} / {checks['delivery']['failed']}",
    )
    figure("soak: tracebacks in Daphne's log", report["log_tracebacks"])
    failed = {name: check for name, check in checks.items() if not check["ok"]}
    assert result.returncode == 0, failed
    assert report["flat"]
    assert report["log_tracebacks"] == 0


def settled(rss_mb: float, fds: int, channels: int = 0, redis: int = 23) -> dict:
    """A cycle's settled sample, as bench.soak.cycle() makes it."""
    return {
        "rss_mb": rss_mb, "fds": fds, "client_sockets": 0, "redis": redis,
        "postgres": 2, "subscriptions": {"channels": channels},
        "load": {"failed": 0, "lost": 0},
    }  # fmt: skip


def test_the_verdict_tells_flat_from_growing():
    args = SimpleNamespace(warmup=2, fd_slack=0, rss_tolerance_mb=10)
    baseline = {"channels": 0}
    # Pools filling during warm-up and memory settling are flat.
    flat = [settled(100, 37, redis=10), settled(104, 46, redis=19),
            settled(108, 50), settled(109, 50)]  # fmt: skip
    checks = verdict(flat, baseline, 0.0, args)
    assert all(check["ok"] for check in checks.values()), checks
    # A file descriptor, 11 MB and a subscription more: three failures.
    growing = [*flat[:2], settled(108, 51), settled(115, 51, channels=1)]
    checks = verdict(growing, baseline, None, args)
    failed = {name for name, check in checks.items() if not check["ok"]}
    assert failed == {"fds", "rss", "subscriptions", "presence"}
