"""
The Redis limit: redis-benchmark against the Redis the benchmarks use, for the
commands the chat's traffic is made of. PING is a bare round trip; PUBLISH is
what the pub/sub channel layer sends once per broadcast. Neither writes a key.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from urllib.parse import urlsplit

COMMANDS = {
    "PING": ["PING"],
    "PUBLISH (one per broadcast)": ["PUBLISH", "bench-redis-limit", "x" * 200],
}


def scenarios(redis_url: str, requests: int) -> list[dict]:
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return [{"scenario": "redis", "command": "redis-benchmark is not installed"}]
    address = urlsplit(redis_url)
    rows = []
    for name, command in COMMANDS.items():
        for pipeline in (1, 16):
            output = subprocess.run(
                [tool, "-h", address.hostname or "127.0.0.1",
                 "-p", str(address.port or 6379), "-c", "50", "-n", str(requests),
                 "-P", str(pipeline), "--csv", *command],
                capture_output=True, text=True, check=True, timeout=300,
            ).stdout  # fmt: skip
            [result] = list(csv.DictReader(io.StringIO(output)))
            rows.append(
                {
                    "scenario": "redis",
                    "command": name,
                    "clients": 50,
                    "pipeline": pipeline,
                    "requests_per_s": round(float(result["rps"])),
                    "p99_ms": float(result["p99_latency_ms"]),
                }
            )
    return rows
