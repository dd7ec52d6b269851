"""
The hardened containers of docker-compose.yml, as Docker reports them and as a
process inside them finds them: a read-only root filesystem, no capabilities
but nginx's few, no privilege gained through setuid, memory, process and
open-file limits, rotated logs, each secret a file given only to the services
that use it and in no container's environment, and Redis refusing clients
without its password. The rest of the stack test shows the hardened stack
still does everything it did.
"""

import subprocess

import pytest

from .stack import service_of

SERVICES = ("nginx", "web", "ws", "migrate", "db", "redis")
# The capabilities each service gets back after dropping them all.
CAPABILITIES = {"nginx": {"NET_BIND_SERVICE", "CHOWN", "SETUID", "SETGID"}}
# Which secrets each service is given.
SECRETS = {
    "nginx": set(),
    "web": {"django_secret_key", "postgres_password", "redis_password"},
    "ws": {"django_secret_key", "postgres_password", "redis_password"},
    "migrate": {"django_secret_key", "postgres_password"},
    "db": {"postgres_password"},
    "redis": {"redis_password"},
}


def by_service(stack) -> dict[str, list[dict]]:
    containers: dict[str, list[dict]] = {}
    for container in stack.containers():
        containers.setdefault(service_of(container), []).append(container)
    assert set(containers) == set(SERVICES), containers.keys()
    return containers


def capabilities(names: list[str] | None) -> set[str]:
    return {name.removeprefix("CAP_") for name in names or []}


def exec_in(container: dict, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", container["Id"], *command],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip


def test_every_container_is_hardened(stack):
    for service, containers in by_service(stack).items():
        for container in containers:
            host = container["HostConfig"]
            name = container["Name"]
            assert host["ReadonlyRootfs"] is True, name
            assert capabilities(host["CapDrop"]) == {"ALL"}, name
            assert capabilities(host["CapAdd"]) == CAPABILITIES.get(service, set())
            assert "no-new-privileges:true" in (host["SecurityOpt"] or []), name
            assert host["Memory"] > 0 and host["PidsLimit"] > 0, name
            log = host["LogConfig"]
            assert log["Type"] == "json-file", name
            assert {"max-size", "max-file"} <= set(log["Config"]), name


def test_nothing_but_the_tmpfs_mounts_can_be_written(stack):
    containers = by_service(stack)
    web, ws, nginx = containers["web"][0], containers["ws"][0], containers["nginx"][0]
    for container in (web, ws):
        refused = exec_in(container, "touch", "/app/chat/planted.py")
        assert refused.returncode != 0
        assert "Read-only file system" in refused.stderr
        assert exec_in(container, "touch", "/tmp/scratch").returncode == 0
    refused = exec_in(nginx, "touch", "/etc/nginx/snippets/planted.conf")
    assert "Read-only file system" in refused.stderr


def test_each_secret_reaches_only_the_services_that_use_it(stack):
    values = {path.name: path.read_text() for path in stack.secrets.iterdir()}
    assert set(values) == {"django_secret_key", "postgres_password", "redis_password"}
    for service, containers in by_service(stack).items():
        for container in containers:
            mounted = {
                mount["Destination"].removeprefix("/run/secrets/")
                for mount in container["Mounts"]
                if mount["Destination"].startswith("/run/secrets/")
            }
            assert mounted == SECRETS[service], container["Name"]
            # Only the files' paths are in the environment, never a value.
            environment = "\n".join(container["Config"]["Env"])
            for name, value in values.items():
                assert value not in environment, (container["Name"], name)


def test_redis_refuses_clients_without_the_password(stack):
    redis = by_service(stack)["redis"][0]
    anonymous = exec_in(redis, "redis-cli", "ping")
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    authenticated = exec_in(
        redis, "sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" '
        "redis-cli ping",
    )  # fmt: skip
    assert authenticated.stdout.strip() == "PONG"
    # Redis rewrote its command line: the password is not in it.
    password = (stack.secrets / "redis_password").read_text()
    command_lines = exec_in(redis, "sh", "-c", "cat /proc/[0-9]*/cmdline")
    assert "redis-server" in command_lines.stdout
    assert password not in command_lines.stdout


@pytest.mark.parametrize("service", ["nginx", "ws"])
def test_open_files_are_sized_for_many_sockets(stack, service):
    """compose's ulimits (OPEN_FILES_LIMIT), and each nginx worker's own
    (worker_rlimit_nofile, 65536)."""
    container = by_service(stack)[service][0]
    limits = exec_in(
        container, "bash", "-c",
        "for status in /proc/[0-9]*/status; do "
        '  grep -q "^PPid:" "$status" || continue; '
        '  pid="${status#/proc/}"; pid="${pid%/status}"; '
        '  [[ "$pid" == "$$" ]] && continue; '
        '  echo "$(tr "\\0" " " < /proc/$pid/cmdline)|'
        '$(grep "Max open files" /proc/$pid/limits)"; '
        "done",
    ).stdout.splitlines()  # fmt: skip
    found = {}
    for line in limits:
        command, _, limit = line.partition("|")
        if limit:
            found[command.strip()] = int(limit.split()[3])
    main = "nginx: master" if service == "nginx" else "levers.server"
    servers = [command for command in found if main in command]
    limit = stack.open_files_limit  # 65536 unless this machine allows fewer
    assert servers, found
    assert all(found[command] == limit for command in servers), found
    if service == "nginx":
        workers = [c for c in found if "nginx: worker" in c]
        assert workers and all(found[c] >= limit for c in workers), found
        configuration = exec_in(container, "nginx", "-T").stdout
        assert "worker_connections 32768;" in configuration
