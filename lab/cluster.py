"""
The site as production runs it, on loopback, for the fault tests: nginx with
the production locations in front of gunicorn and Daphne processes started
from deploy/start-web.sh and deploy/start-ws.sh, with a Redis of their own and
a PostgreSQL database. A test kills, stops and restarts any of them; whatever
runs when the test ends is stopped.
"""

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psutil
import psycopg
from websockets import InvalidStatus
from websockets.asyncio.client import connect as ws_connect

from tests.processes import BASE_DIR, BIN, ServerProcess, free_port

from .backing import STOP_TIMEOUT, Nginx, RedisServer

# The time at the start of a log line, e.g. "2026-11-24 06:06:08,505 ".
TIMESTAMP = re.compile(r"^[\d-]+ [\d:,]+ ")
WEB_SCRIPT = str(BASE_DIR / "deploy" / "start-web.sh")
WS_SCRIPT = str(BASE_DIR / "deploy" / "start-ws.sh")


def django_database_url() -> str:
    """The URL of the database Django uses (in a test, the test database)."""
    from django.db import connection

    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}"
    )


def server_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The production settings minus HTTPS (nginx speaks plain HTTP here)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "CHAT_", "REDIS_", "DB_"))
    }
    return env | {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "chatroom.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SESSION_COOKIE_SECURE": "false",
        "DJANGO_CSRF_COOKIE_SECURE": "false",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"faults-{uuid.uuid4().hex[:8]}",
    }


class StoredMessage(NamedTuple):
    id: int
    client_id: str
    author: str
    body: str


@dataclass
class Cluster:
    env: dict[str, str]
    log_dir: Path
    redis: RedisServer
    daphnes: list[ServerProcess] = field(default_factory=list)
    gunicorns: list[ServerProcess] = field(default_factory=list)
    nginx: Nginx | None = None
    # name -> (argv, env) of each server, to start it again on the same port
    specs: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def origin(self) -> str:
        return self.nginx.url

    def ws_url(self, slug: str) -> str:
        return f"ws://127.0.0.1:{self.nginx.port}/ws/chat/{slug}/"

    def servers(self) -> list[ServerProcess]:
        return [*self.gunicorns, *self.daphnes]

    # --- starting and stopping -----------------------------------------------

    def add_gunicorn(self) -> ServerProcess:
        port = free_port()
        name = f"gunicorn{len(self.gunicorns) + 1}"
        # As in docker-compose.yml: workers keep their connection for a minute.
        env = self.env | {
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "DB_CONN_MAX_AGE": "60",
        }
        self.specs[name] = ([WEB_SCRIPT], env)
        self.gunicorns.append(
            ServerProcess(name, [WEB_SCRIPT], port, env, self.log_dir)
        )
        return self.gunicorns[-1]

    def add_daphne(self) -> ServerProcess:
        port = free_port()
        name = f"daphne{len(self.daphnes) + 1}"
        env = self.env | {"DAPHNE_BIND": "127.0.0.1", "DAPHNE_PORT": str(port)}
        self.specs[name] = ([WS_SCRIPT], env)
        self.daphnes.append(ServerProcess(name, [WS_SCRIPT], port, env, self.log_dir))
        return self.daphnes[-1]

    def kill(self, server: ServerProcess) -> None:
        """kill -9: no close frames, no cleanup, no goodbye to Redis."""
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=STOP_TIMEOUT)
        server.stop()  # closes its log

    def terminate(self, server: ServerProcess) -> int:
        """SIGTERM, as compose and systemd stop a server; its exit code."""
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=STOP_TIMEOUT)
        server.stop()
        return code

    def restart(self, server: ServerProcess) -> ServerProcess:
        """The same server again on the same port (its log goes on); not waited for."""
        argv, env = self.specs[server.name]
        again = ServerProcess(server.name, argv, server.port, env, self.log_dir)
        group = self.daphnes if server in self.daphnes else self.gunicorns
        group[group.index(server)] = again
        return again

    def stop(self) -> None:
        for stop in (
            *(nginx.remove for nginx in [self.nginx] if nginx),
            *(server.stop for server in self.servers()),
            self.redis.stop,
        ):
            with contextlib.suppress(Exception):
                stop()

    # --- looking at it -------------------------------------------------------

    def pids(self) -> dict[str, int]:
        """Of the servers and nginx."""
        pids = {server.name: server.process.pid for server in self.servers()}
        return pids | {"nginx": self.nginx.process.pid}

    def running(self) -> dict[str, bool]:
        return {server.name: server.process.poll() is None for server in self.servers()}

    def rss(self, server: ServerProcess) -> int:
        return psutil.Process(server.process.pid).memory_info().rss

    def sockets(self, server: ServerProcess) -> int:
        """Connections open to a server (for Daphne, its WebSockets)."""
        return sum(
            1
            for c in psutil.Process(server.process.pid).net_connections("tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
        )

    def connections_to(self, server: ServerProcess, port: int) -> int:
        """Connections a server holds to a port (for Daphne, its database pool)."""
        return sum(
            1
            for c in psutil.Process(server.process.pid).net_connections("tcp")
            if c.raddr and c.raddr.port == port
        )

    async def in_rotation(self, servers: list[ServerProcess]) -> float:
        """Seconds until nginx sends new sockets and requests to restarted
        servers again: it leaves a replica that refused a connection out for
        10 s (fail_timeout), and a rolling restart that stopped the next one
        meanwhile would leave it none (502)."""
        waiting = {f"127.0.0.1:{server.port}" for server in servers}
        seen = len(self.nginx.requests())
        start = time.monotonic()
        while waiting:
            assert time.monotonic() - start < 30, f"nginx never sent to {waiting}"
            # Anonymous: Daphne accepts, then refuses with an error frame. A
            # refusal by nginx is in its log, for the test to find.
            with contextlib.suppress(InvalidStatus):
                async with ws_connect(
                    self.ws_url("probe"), origin=self.origin, open_timeout=10
                ) as socket:
                    await asyncio.wait_for(socket.recv(), 10)
            await asyncio.to_thread(self._get, "/healthz")
            await asyncio.sleep(0.5)
            answered = self.nginx.requests()[seen:]
            waiting -= {r.upstreams[-1] for r in answered if r.status < 500}
        return time.monotonic() - start

    def _get(self, path: str) -> None:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(self.origin + path, timeout=10).close()

    def tracebacks(self) -> Counter[str]:
        """Tracebacks in the servers' logs, counted by server, level and logger
        of the log line above each."""
        found = Counter()
        for name in self.specs:
            log = (self.log_dir / f"{name}.log").read_text(errors="replace")
            lines = log.splitlines()
            for number, line in enumerate(lines):
                above = lines[number - 1] if number else ""
                # A chained traceback follows its cause after a blank line.
                if line.startswith("Traceback (most recent call last)") and above:
                    level_and_logger = TIMESTAMP.sub("", above).split()[:2]
                    found[" ".join([f"{name}:", *level_and_logger])] += 1
        return found

    # --- data ----------------------------------------------------------------

    def seed(self, slug: str, usernames: list[str]) -> dict[str, str]:
        """Users, a room and logged-in sessions: {username: Cookie header}."""
        seed = [str(BIN / "python"), "-m", "lab.seed", slug, *usernames]
        return json.loads(run(seed, self.env).splitlines()[-1])

    def room_messages(self, slug: str) -> list[StoredMessage]:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT m.id, m.client_id, u.username, m.body FROM chat_message m"
                " JOIN chat_room r ON r.id = m.room_id"
                " JOIN auth_user u ON u.id = m.author_id"
                " WHERE r.slug = %s ORDER BY m.id",
                [slug],
            ).fetchall()
        return [StoredMessage(*row) for row in rows]


@contextlib.contextmanager
def running_cluster(
    log_dir: Path,
    database_url: str,
    *,
    daphnes: int = 2,
    gunicorns: int = 1,
    static_root: Path | None = None,
) -> Iterator[Cluster]:
    """Redis, the servers and nginx, started and ready; all stopped afterwards.
    With `static_root`, the static files are collected there first, so that
    pages render (the manifest their URLs come from)."""
    redis = RedisServer(log_dir)
    cluster = Cluster(env=server_env(database_url, ""), log_dir=log_dir, redis=redis)
    try:
        if static_root is not None:
            cluster.env["DJANGO_STATIC_ROOT"] = str(static_root)
            run(
                [str(BIN / "python"), "manage.py", "collectstatic", "--noinput"],
                cluster.env,
            )
        redis.start()
        cluster.env["REDIS_URL"] = redis.url
        for _ in range(gunicorns):
            cluster.add_gunicorn()
        for _ in range(daphnes):
            cluster.add_daphne()
        for server in cluster.servers():
            server.wait_ready()
        cluster.nginx = Nginx(
            ws_ports=[server.port for server in cluster.daphnes],
            web_ports=[server.port for server in cluster.gunicorns],
            log_dir=log_dir,
        )
        cluster.nginx.start()
        yield cluster
    finally:
        cluster.stop()


def migrate(env: dict[str, str]) -> None:
    """The production release step (deploy/start-migrate.sh)."""
    run([str(BASE_DIR / "deploy" / "start-migrate.sh")], env)


def run(argv: list[str], env: dict[str, str]) -> str:
    """A command of the project, run to its end; its output."""
    result = subprocess.run(
        argv,
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.args} failed:\n{result.stderr}"
    return result.stdout
