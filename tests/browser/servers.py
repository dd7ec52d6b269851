"""
The servers the browser tests talk to, started once per session on loopback
with the production settings minus HTTPS: Daphne (deploy/start-ws.sh) for the
pages and the WebSockets, gunicorn (deploy/start-web.sh) as the WSGI server
that stays up when Daphne is stopped, and Django's runserver, which has no
WebSocket at all. They share one SQLite database, as a small site would.
"""

import os
import secrets
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..processes import BASE_DIR, BIN, ServerProcess, free_port


@dataclass
class Servers:
    daphne: ServerProcess
    gunicorn: ServerProcess
    runserver: ServerProcess
    env: dict[str, str]
    log_dir: Path

    def stop_daphne(self) -> None:
        self.daphne.stop()

    def start_daphne(self) -> None:
        """Daphne again, on the same port, so pages reconnect by themselves."""
        self.daphne = start_daphne(self.env, self.daphne.port, self.log_dir)
        self.daphne.wait_ready()

    def stop(self) -> None:
        for server in (self.daphne, self.gunicorn, self.runserver):
            server.stop()


def server_env(workdir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "CHAT_"))
    }
    env |= {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: no redirect to HTTPS, cookies without Secure.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SESSION_COOKIE_SECURE": "false",
        "DJANGO_CSRF_COOKIE_SECURE": "false",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(workdir / "static"),
        # The page without a WebSocket polls; a short interval keeps tests quick.
        "CHAT_POLL_INTERVAL_MS": "500",
        # Rooms of three show the roster's paging (test_live_chat.py).
        "CHAT_PRESENCE_PAGE_SIZE": "2",
        "WEB_CONCURRENCY": "2",
    }
    if os.environ.get("REDIS_URL"):
        # Keep this run's channels and presence apart on a shared Redis.
        env["REDIS_PREFIX"] = f"browser-{uuid.uuid4().hex[:8]}"
    return env


def start_daphne(env: dict[str, str], port: int, log_dir: Path) -> ServerProcess:
    return ServerProcess(
        "daphne",
        [str(BASE_DIR / "deploy" / "start-ws.sh")],
        port,
        env | {"DAPHNE_BIND": "127.0.0.1", "DAPHNE_PORT": str(port)},
        log_dir,
    )


def start_servers(workdir: Path) -> Servers:
    env = server_env(workdir)
    for command in (["migrate"], ["collectstatic"]):
        subprocess.run(
            [str(BIN / "python"), "manage.py", *command, "--noinput", "--verbosity=0"],
            cwd=BASE_DIR, env=env, check=True, timeout=120,
        )  # fmt: skip
    web_port, run_port = free_port(), free_port()
    servers = Servers(
        daphne=start_daphne(env, free_port(), workdir),
        gunicorn=ServerProcess(
            "gunicorn",
            [str(BASE_DIR / "deploy" / "start-web.sh")],
            web_port,
            env | {"GUNICORN_BIND": f"127.0.0.1:{web_port}"},
            workdir,
        ),
        runserver=ServerProcess(
            "runserver",
            [
                str(BIN / "python"),
                "manage.py",
                "runserver",
                "--noreload",
                f"127.0.0.1:{run_port}",
            ],
            run_port,
            env,
            workdir,
        ),  # fmt: skip
        env=env,
        log_dir=workdir,
    )
    try:
        for server in (servers.daphne, servers.gunicorn, servers.runserver):
            server.wait_ready()
    except BaseException:
        servers.stop()
        raise
    return servers
