"""
The stack as an operator sees it: every service healthy at the requested
scale, production checks clean inside the image, unprivileged processes,
networks that keep nginx away from the data, the systemd nginx site valid,
and the backup commands of docs/deploy.md working.
"""

import subprocess

from .actions import create_room, post_message
from .stack import PROJECT_DIR, PROJECT_NAME


def test_every_service_is_up_healthy_and_scaled(stack):
    states = list(stack.health().values())
    for service, replicas in {
        "nginx": 1,
        "web": 2,
        "ws": 3,
        "db": 1,
        "redis": 1,
    }.items():
        assert states.count((service, "healthy")) == replicas, states
    assert ("migrate", "exited(0)") in states


def test_check_deploy_is_clean_inside_the_image(stack):
    result = stack.run(
        "exec", "-T", "web",
        "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_nginx_cannot_reach_the_database_or_redis(stack):
    nginx = stack.containers("nginx")[0]["Id"]
    for host, port in (("db", 5432), ("redis", 6379), ("web", 8000)):
        probe = subprocess.run(
            ["docker", "exec", nginx, "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"],
            capture_output=True, check=False, timeout=30,
        )  # fmt: skip
        assert (probe.returncode == 0) is (host == "web"), (host, probe.stderr)


def test_app_containers_run_as_an_unprivileged_user(stack):
    for container in stack.containers("web") + stack.containers("ws"):
        user = subprocess.run(
            ["docker", "exec", container["Id"], "id", "-u"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert user != "0", container["Name"]


def test_nginx_site_for_systemd_deployments_is_valid(stack):
    """deploy/nginx/<project>.conf, with the same snippets, in the stack's nginx."""
    nginx = stack.containers("nginx")[0]["Config"]["Image"]
    site = PROJECT_DIR / "deploy" / "nginx" / f"{PROJECT_NAME}.conf"
    result = subprocess.run(
        [
            "docker", "run", "--rm", "--entrypoint", "nginx",
            "--volume", f"{site}:/etc/nginx/conf.d/default.conf:ro",
            "--volume", f"{stack.certs}:/etc/letsencrypt/live/chat.example.com:ro",
            nginx, "-t",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_backup_and_restore_commands_of_the_docs(stack, people):
    """docs/deploy.md's pg_dump, then pg_restore into a scratch database."""
    slug = create_room(people[0])
    post_message(stack, people[0], slug, "keep me")
    dump = stack.run_bytes(
        "exec", "-T", "db",
        "pg_dump", f"--username={PROJECT_NAME}", "--format=custom", PROJECT_NAME,
    )  # fmt: skip
    assert dump.startswith(b"PGDMP")
    stack.run("exec", "-T", "db", "createdb", f"--username={PROJECT_NAME}", "restored")
    stack.run_bytes(
        "exec", "-T", "db",
        "pg_restore", f"--username={PROJECT_NAME}", "--dbname=restored", "--no-owner",
        stdin=dump,
    )  # fmt: skip
    restored = stack.run(
        "exec", "-T", "db", "psql", f"--username={PROJECT_NAME}", "--dbname=restored",
        "--tuples-only", "--no-align", "--command",
        "SELECT body FROM chat_message JOIN chat_room ON chat_room.id = room_id "
        f"WHERE slug = '{slug}'",
    )  # fmt: skip
    assert restored.stdout.strip() == "keep me"


def image_files(stack, service: str, root: str) -> set[str]:
    image = stack.containers(service)[0]["Config"]["Image"]
    listed = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "find", image, root,
         "-path", "*/__pycache__", "-prune", "-o", "-type", "f", "-print"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return {path.removeprefix(f"{root}/") for path in listed.split()}


def test_the_app_image_holds_only_what_runs_in_production(stack):
    files = image_files(stack, "web", "/app")
    for needed in (
        "manage.py",
        f"{PROJECT_NAME}/settings.py",
        f"{PROJECT_NAME}/asgi.py",
        f"{PROJECT_NAME}/wsgi.py",
        "chat/consumers.py",
        "levers/server.py",
        "templates/base.html",
        "deploy/start-web.sh",
        "deploy/start-ws.sh",
        "deploy/gunicorn.conf.py",
        "deploy/healthcheck.py",
        "requirements.txt",
    ):
        assert needed in files, needed
    assert any(path.startswith("staticfiles/chat/") for path in files)
    development = [
        path
        for path in files
        if "/tests/" in f"/{path}"
        or path.endswith(("conftest.py", ".toml"))
        or (path.endswith(".md") and not path.startswith("staticfiles/"))
        or path.startswith(("docs/", "deploy/nginx/", "deploy/systemd/", "lab/"))
        or path.startswith(("bench/", "Makefile", "requirements-dev", "docker-compose"))
    ]
    assert development == []
