"""
The servers a benchmark runs against, each started fresh on a loopback port:
the project (Daphne with chatroom.asgi, PostgreSQL, Redis), the Channels
tutorial's consumer on the default RedisChannelLayer and on the pub/sub layer,
and a raw `websockets` broadcast server.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# A server to create the benchmark database on, and that database's name.
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
BENCH_DATABASE = "chatroom_bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    """Until something listens on the port; fails with the log if the server
    exits or nothing listens within 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}; log: {log}")


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL if that is not enough: never leave a server behind."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Target:
    name: str
    protocol: str  # the load generator's wire format
    label: str  # for tables and plots
    count: int = 1  # server processes, each on a port of its own
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    log: Path | None = None
    # The WebSocket scenarios it runs (bench/run.py).
    scenarios: tuple[str, ...] = ("fanout", "rooms")

    @property
    def urls(self) -> list[str]:
        path = "/ws/{room}/" if self.protocol == "raw" else "/ws/chat/{room}/"
        return [f"ws://127.0.0.1:{port}{path}" for port in self.ports]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, log_dir: Path, clients: int) -> None:
        self.log = log_dir / f"{self.name}.log"
        self.ports = [free_port() for _ in range(self.count)]
        self.processes = []
        for port in self.ports:
            argv, env = self.command(port)
            self.processes.append(
                subprocess.Popen(
                    argv,
                    cwd=BASE_DIR,
                    env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env},
                    stdout=self.log.open("ab"),
                    stderr=subprocess.STDOUT,
                )
            )
        for port, process in zip(self.ports, self.processes, strict=True):
            wait_listening(port, process, self.log)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


class RawBroadcast(Target):
    def command(self, port):
        argv = [str(BIN / "python"), "-m", "bench.baselines.raw_broadcast"]
        return [*argv, "--port", str(port)], {}


@dataclass
class Tutorial(Target):
    layer: str = "redis"

    def command(self, port):
        argv = [str(BIN / "daphne"), "-p", str(port), "--access-log", os.devnull]
        return [*argv, "bench.baselines.tutorial:application"], {
            "BENCH_LAYER": self.layer,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        }


@dataclass
class Project(Target):
    """Daphne as deploy/start-ws.sh runs it, with the production settings
    (HTTPS parts off: loopback), on a benchmark database of its own. With
    count > 1, several Daphne processes share the database and Redis, as
    `docker compose up --scale ws=N` runs them behind nginx."""

    # One key for the sessions bench/project.py creates and the servers that
    # check them.
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))
    redis_prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:6]}")
    # Variables on top of the production ones: LEVER_X="off" runs without a lever.
    variables: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        return {
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SESSION_COOKIE_SECURE": "false",
            "DJANGO_CSRF_COOKIE_SECURE": "false",
            "DATABASE_URL": database_url(),
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": self.redis_prefix,
            "LOG_LEVEL": "WARNING",
            # A few load-generator users send what a crowd would: the per-user
            # rate limit would measure itself, not the chat.
            "CHAT_MESSAGE_RATE_LIMIT": "",
            **self.variables,
        }

    def command(self, port):
        return [str(BASE_DIR / "deploy" / "start-ws.sh")], {
            **self.environment(),
            "DAPHNE_BIND": "127.0.0.1",
            "DAPHNE_PORT": str(port),
        }

    def start(self, log_dir: Path, clients: int) -> None:
        env = self.environment()
        output = subprocess.run(
            [str(BIN / "python"), "-m", "bench.project", "--users", str(clients),
             "--rooms", "100"],
            cwd=BASE_DIR, env={**os.environ, **env}, capture_output=True, text=True,
            check=True, timeout=600,
        ).stdout  # fmt: skip
        self.cookies = json.loads(output)
        super().start(log_dir, clients)


@dataclass
class OtherServer(Project):
    """The project's own chatroom/asgi.py under another ASGI server, with the
    same settings and database: what a server other than Daphne gives the same
    application (the idle scenario). The levers are Daphne's and stay off."""

    server: str = "uvicorn"
    scenarios: tuple[str, ...] = ()

    def command(self, port):
        address = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        if self.server == "uvicorn":
            argv = [str(BIN / "uvicorn"), *address, "--no-access-log"]
        else:
            argv = [str(BIN / "granian"), *address, "--interface", "asgi"]
        return [*argv, "chatroom.asgi:application"], self.environment()


def analyze_database() -> None:
    """Refresh PostgreSQL's statistics of the benchmark database, as autovacuum
    does in production. These machines' PostgreSQL runs with autovacuum off, and
    a planner that has never analyzed the message table takes a busy room for a
    small one: it read and sorted all of a 10,000-message room for each history
    page (6 ms) instead of walking the index (0.1 ms)."""
    with psycopg.connect(database_url(), autocommit=True) as connection:
        connection.execute("ANALYZE")


def raise_open_files_limit() -> None:
    """Thousands of sockets need as many file descriptors, in this process and
    in the servers and load generators it starts."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def database_url() -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"


def fresh_database() -> None:
    """Drop and create the benchmark database, so every run starts empty."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')


def all_targets() -> list[Target]:
    cores = os.cpu_count() or 1
    return [
        Project("project", "chatroom", "chatroom, 1 Daphne process"),
        Project(
            "project-scaled",
            "chatroom",
            f"chatroom, {cores} Daphne processes",
            count=cores,
            scenarios=("fanout", "large-room", "rooms"),
        ),
        # The same process writing each message with the ORM's transaction
        # instead of the one hand-written statement (chat/managers.py): what
        # the statement gains, where it can gain, the rooms scenario.
        Project(
            "project-orm",
            "chatroom",
            "chatroom, 1 Daphne process, ORM writes",
            variables={"CHAT_MESSAGE_WRITE": "orm"},
            scenarios=("rooms",),
        ),
        # The same process storing each message alone instead of the ones that
        # wait together (chat/writes.py): what the group commit gains.
        Project(
            "project-unbatched",
            "chatroom",
            "chatroom, 1 Daphne process, each message stored alone",
            variables={"CHAT_MESSAGE_BATCH_SIZE": "1"},
            scenarios=("rooms",),
        ),
        Tutorial("tutorial-redis", "tutorial", "tutorial consumer, RedisChannelLayer"),
        Tutorial(
            "tutorial-pubsub",
            "tutorial",
            "tutorial consumer, RedisPubSubChannelLayer",
            layer="pubsub",
        ),
        RawBroadcast(
            "raw",
            "raw",
            "raw websockets broadcast (ceiling)",
            scenarios=("fanout", "large-room"),
        ),
        OtherServer("project-uvicorn", "chatroom", "chatroom under uvicorn"),
        OtherServer(
            "project-granian", "chatroom", "chatroom under granian", server="granian"
        ),
    ]
