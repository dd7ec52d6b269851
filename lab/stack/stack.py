"""
The compose stack under test: bring it up on loopback ports, wait until every
service is healthy, read logs, tear it down leaving nothing behind.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The project whose stack is tested: one generated from the template
# (stack-test.sh), or this repository itself.
PROJECT_DIR = Path(
    os.environ.get("STACK_PROJECT_DIR") or Path(__file__).resolve().parents[2]
)
PROJECT_NAME = os.environ.get("STACK_PROJECT_NAME", "chatroom")
LONG_RUNNING = ("nginx", "web", "ws", "db", "redis")


def compose_command() -> list[str]:
    """Compose v2 when the docker CLI has it, else docker-compose (1.29)."""
    if override := os.environ.get("COMPOSE"):
        return override.split()
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (each probe stays bound until all are chosen)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def service_of(container: dict) -> str:
    return container["Config"]["Labels"]["com.docker.compose.service"]


class StackError(RuntimeError):
    pass


@dataclass
class Stack:
    project: str
    workdir: Path
    scale: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.https_port, self.http_port = free_ports(2)
        self.compose = compose_command()
        self.certs = self.workdir / "certs"
        self.secrets = self.workdir / "secrets"
        self.env_file = self.workdir / "stack.env"
        self.build_log = self.workdir / "build.log"

    @property
    def open_files_limit(self) -> int:
        """compose's default, or this machine's limit where it is lower: the
        engine cannot give a container more than it has itself."""
        return min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def ca_file(self) -> Path:
        return self.certs / "fullchain.pem"

    # --- lifecycle -----------------------------------------------------------------

    def write_config(self) -> None:
        """A certificate for localhost, the secrets and an env file, as a user
        would write them."""
        self.certs.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost",
                "-keyout", str(self.certs / "privkey.pem"),
                "-out", str(self.certs / "fullchain.pem"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        # What `make secrets` writes.
        self.secrets.mkdir(mode=0o700, exist_ok=True)
        for name, value in {
            "django_secret_key": os.urandom(32).hex() + os.urandom(16).hex(),
            "postgres_password": os.urandom(12).hex(),
            "redis_password": os.urandom(12).hex(),
        }.items():
            (self.secrets / name).write_text(value)
            (self.secrets / name).chmod(0o644)
        settings = {
            "SECRETS_DIR": str(self.secrets),
            "OPEN_FILES_LIMIT": str(self.open_files_limit),
            "APP_ENV_FILE": str(self.env_file),
            "DJANGO_ALLOWED_HOSTS": "localhost",
            "NGINX_SERVER_NAME": "localhost",
            "PUBLISH_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(self.http_port),
            "HTTPS_PORT": str(self.https_port),
            "TLS_CERTS_DIR": str(self.certs),
            "WEB_CONCURRENCY": "2",
            "APP_IMAGE": f"{self.project}:latest",
            "PROXY_IMAGE": f"{self.project}-nginx:latest",
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        command = self._argv(*args)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired as expired:
            raise StackError(f"{' '.join(args)} took over {timeout:.0f} s") from expired
        if check and result.returncode != 0:
            raise StackError(
                f"{' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def _argv(self, *args: str) -> list[str]:
        return [
            *self.compose,
            "--project-name", self.project,
            "--project-directory", str(PROJECT_DIR),
            "--file", str(PROJECT_DIR / "docker-compose.yml"),
            "--env-file", str(self.env_file),
            *args,
        ]  # fmt: skip

    def run_bytes(self, *args: str, stdin: bytes | None = None) -> bytes:
        """A compose command whose output (or input) is binary, e.g. a dump."""
        result = subprocess.run(
            self._argv(*args), input=stdin, capture_output=True, timeout=120
        )
        if result.returncode != 0:
            raise StackError(f"{' '.join(args)} failed: {result.stderr[-2000:]!r}")
        return result.stdout

    def up(self, timeout: float = 240) -> None:
        build = self.run("build", check=False, timeout=1800)
        self.build_log.write_text(build.stdout + build.stderr)
        if build.returncode != 0:
            raise StackError(f"build failed:\n{(build.stdout + build.stderr)[-6000:]}")
        scale = [f"--scale={name}={count}" for name, count in self.scale.items()]
        self.run("up", "--detach", "--no-build", *scale, check=False, timeout=timeout)
        self.wait_healthy(timeout=timeout)

    def down(self) -> None:
        self.run(
            "down", "--volumes", "--remove-orphans", "--timeout", "10", check=False
        )
        subprocess.run(
            ["docker", "image", "rm", "--force",
             f"{self.project}:latest", f"{self.project}-nginx:latest"],
            capture_output=True, check=False,
        )  # fmt: skip

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of the project that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("container", "volume", "network"):
            listing = ["docker", kind, "ls", "--quiet", "--filter", label]
            if kind == "container":
                listing.insert(3, "--all")
            ids = subprocess.run(
                listing, capture_output=True, text=True, check=True
            ).stdout.split()
            found += [f"{kind} {id_}" for id_ in ids]
        return found

    # --- state ------------------------------------------------------------------------

    def containers(self, service: str | None = None) -> list[dict]:
        """`docker inspect` of the project's containers, running or not."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = subprocess.run(
            ["docker", "ps", "--all", "--quiet", *filters],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if not ids:
            return []
        inspected = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
        return sorted(json.loads(inspected), key=lambda c: c["Name"])

    def health(self) -> dict[str, tuple[str, str]]:
        """Container name -> (service, healthy / starting / unhealthy / exited(N))."""
        states = {}
        for container in self.containers():
            state = container["State"]
            if state["Running"]:
                status = state.get("Health", {}).get("Status", "running")
            else:
                status = f"exited({state['ExitCode']})"
            states[container["Name"].lstrip("/")] = (service_of(container), status)
        return states

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        expected = {name: self.scale.get(name, 1) for name in LONG_RUNNING}
        while True:
            states = self.health().values()
            healthy = {
                name: sum(1 for s in states if s == (name, "healthy"))
                for name in LONG_RUNNING
            }
            if healthy == expected and ("migrate", "exited(0)") in states:
                return
            failed = [
                (service, status)
                for service, status in states
                if status == "unhealthy"
                or (status.startswith("exited") and status != "exited(0)")
            ]
            if failed or time.monotonic() > deadline:
                raise StackError(
                    f"stack not healthy after {timeout:.0f} s: {self.health()}\n"
                    f"{self.logs(tail=80)}"
                )
            time.sleep(1)

    def logs(self, *services: str, tail: int = 200) -> str:
        """Each container's own log, named, so a failure shows who said what."""
        chunks = []
        for container in self.containers():
            if services and service_of(container) not in services:
                continue
            result = subprocess.run(
                ["docker", "logs", "--tail", str(tail), container["Id"]],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            chunks.append(
                f"----- {container['Name'].lstrip('/')} -----\n"
                f"{result.stdout}{result.stderr}"
            )
        return "\n".join(chunks)

    def container_log(self, container: dict) -> str:
        result = subprocess.run(
            ["docker", "logs", container["Id"]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return result.stdout + result.stderr
