"""
Programs the fault tests run beside the servers, each on a free loopback port
and in a directory of its own, so that stopping or restarting one disturbs
nothing else on the machine: a redis-server, a PostgreSQL cluster and nginx in
front of the production locations (deploy/nginx/snippets/).
"""

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest

from tests.processes import BASE_DIR, free_port

STOP_TIMEOUT = 20
START_TIMEOUT = 30
# Where Debian puts the programs: root's PATH has /usr/sbin, a user's may not,
# and PostgreSQL's are in a directory of its version.
SEARCH_PATH = os.pathsep.join(
    [
        os.environ.get("PATH", ""),
        *("/usr/local/bin", "/usr/sbin", "/usr/bin"),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
    ]
)


def program(name: str, package: str) -> str:
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package}")
    return path


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Signal a process, wait for it (SIGKILL after STOP_TIMEOUT); its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for(check, what: str, log: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            check()
            return
        except Exception:
            time.sleep(0.1)
    stop_process(process)
    pytest.fail(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")


def private_dir(prefix: str) -> Path:
    """A directory outside pytest's (0700) tmp tree, which programs that drop
    privileges (nginx workers, PostgreSQL run as nobody) could not enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class RedisServer:
    """A redis-server of our own, without persistence: a restart empties it."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_dir / "redis.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [
            program("redis-server", "redis-server"),
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ping, "redis-server", self.log_path, self.process)

    def _ping(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class PostgresCluster:
    """A PostgreSQL cluster of our own in a temporary directory.

    initdb and postgres refuse to run as root: as root they run as nobody,
    through setpriv (util-linux), which execs: no process in between, so
    signals reach postgres itself. As any other user they run as that user.
    """

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.dir = private_dir("chatroom-pg-")
        self.data = self.dir / "data"
        self.log_path = log_dir / "postgres.log"
        self.process: subprocess.Popen | None = None
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            self.as_owner = [
                program("setpriv", "util-linux"),
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
            ]

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        result = subprocess.run(
            [
                *self.as_owner,
                program("initdb", "postgresql"),
                *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
                *("-E", "UTF8", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"initdb failed:\n{result.stderr}"

    def start(self) -> None:
        argv = [
            *self.as_owner,
            program("postgres", "postgresql"),
            *("-D", str(self.data), "-p", str(self.port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._select_one, "PostgreSQL", self.log_path, self.process)

    def _select_one(self) -> None:
        with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """A fast shutdown (what pg_ctl restart does): sessions are cut."""
        if self.process is not None:
            stop_process(self.process, signal.SIGINT)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LoggedRequest(NamedTuple):
    status: int
    upstreams: list[str]  # "127.0.0.1:port" of each replica tried, in order
    upstream_statuses: str
    method: str
    uri: str


NGINX_CONF = """\
# Generated by lab/backing.py: the production locations
# (snippets/chatroom-locations.conf) over plain HTTP on loopback.
worker_processes 1;
pid {dir}/nginx.pid;
error_log {logs}/nginx-error.log info;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/temp/client_body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    log_format upstreams '$status "$upstream_addr" "$upstream_status" '
                         '$request_method $uri';
    access_log {logs}/nginx-access.log upstreams;
    include snippets/chatroom-http.conf;

    # As in deploy/nginx/templates/default.conf.template.
    upstream chatroom_ws {{
        least_conn;
{ws_servers}
    }}
    upstream chatroom_web {{
{web_servers}
    }}
    # As in production: hosts the site does not serve get no answer.
    server {{
        listen 127.0.0.1:{port} default_server;
        return 444;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name 127.0.0.1 localhost;
        include snippets/chatroom-locations.conf;
    }}
}}
"""


class Nginx:
    """nginx in the foreground with the production locations; relative includes
    resolve next to nginx.conf, where snippets/ links to deploy/nginx/snippets."""

    def __init__(self, ws_ports: list[int], web_ports: list[int], log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = private_dir("chatroom-nginx-")
        (self.dir / "temp").mkdir()
        (self.dir / "snippets").symlink_to(BASE_DIR / "deploy" / "nginx" / "snippets")
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(
                dir=self.dir,
                logs=log_dir,
                port=self.port,
                ws_servers=self._servers(ws_ports),
                web_servers=self._servers(web_ports),
            )
        )
        self.log_path = log_dir / "nginx-error.log"
        self.access_log = log_dir / "nginx-access.log"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def _servers(ports: list[int]) -> str:
        # The production parameters: one failure takes a replica out for 10 s.
        return "\n".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;"
            for port in ports
        )

    def start(self) -> None:
        argv = [
            program("nginx", "nginx"),
            *("-p", str(self.dir), "-c", str(self.conf), "-e", str(self.log_path)),
            *("-g", "daemon off;"),
        ]
        with (self.log_path.parent / "nginx.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._healthz, "nginx", self.log_path, self.process)

    def _healthz(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.1 200")

    def requests(self) -> list[LoggedRequest]:
        """Every request nginx answered so far (a WebSocket once it has closed)."""
        if not self.access_log.exists():
            return []
        return [
            LoggedRequest(int(m[1]), m[2].split(", "), m[3], m[4], m[5])
            for m in re.finditer(
                r'^(\d{3}) "([^"]*)" "([^"]*)" (\S+) (\S+)$',
                self.access_log.read_text(),
                re.MULTILINE,
            )
        ]

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM, not the graceful SIGQUIT, which waits for every open
            # WebSocket to end.
            stop_process(self.process)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
