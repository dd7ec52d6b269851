"""
The project template (lab/template.py, `make template`): the README's
startproject command makes a project that is the product under the user's
name, lean, whose own two commands work.
"""

import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from websockets.sync.client import connect as ws_connect

from lab import template
from tests.processes import free_port
from tests.webclient import sign_up

README = template.BASE_DIR / "README.md"
# The generated project's `make test` on the embedded defaults; the issue's
# budget is about two minutes on two cores, installation aside.
MAKE_TEST_TIMEOUT = 20 * 60


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return template.build(tmp_path_factory.mktemp("dist") / "chatroom-template.zip")


@pytest.fixture(scope="module")
def acme_chat(archive, tmp_path_factory) -> Path:
    return template.generate(
        "acme_chat", tmp_path_factory.mktemp("gen"), template=archive
    )


def files_of(root: Path) -> dict[str, Path]:
    return {
        str(path.relative_to(root)): path
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_under_its_own_name_the_template_gives_back_the_product(archive, tmp_path):
    """Every product file comes out byte for byte, lab blocks aside, with its
    mode; and nothing of the lab comes out."""
    project = template.generate("chatroom", tmp_path, template=archive)
    generated = files_of(project)
    expected = template.product_files()
    assert sorted(generated) == expected
    for path in expected:
        source = template.BASE_DIR / path
        wanted = source.read_bytes()
        if template.is_rendered(path):
            wanted = template.without_lab(wanted.decode(), path).encode()
        assert generated[path].read_bytes() == wanted, path
        assert os.access(generated[path], os.X_OK) == os.access(source, os.X_OK), path
    assert not [path for path in expected if path.startswith(template.LAB)]


def test_under_another_name_nothing_says_chatroom(acme_chat):
    found = [
        path
        for path, file in files_of(acme_chat).items()
        if "chatroom" in path.lower() or b"chatroom" in file.read_bytes().lower()
    ]
    assert found == []


def test_the_name_is_everywhere_chatroom_stood(acme_chat):
    def read(path: str) -> str:
        return (acme_chat / path).read_text()

    assert (acme_chat / "acme_chat" / "settings.py").exists()
    assert '"acme_chat.settings"' in read("manage.py")
    assert '"acme_chat.settings"' in read("acme_chat/asgi.py")
    assert '"acme_chat.settings"' in read("acme_chat/wsgi.py")
    assert 'default="acme_chat"' in read("acme_chat/settings.py")  # REDIS_PREFIX
    assert "acme_chat:latest" in read("docker-compose.yml")
    assert "acme_chat-nginx:latest" in read("docker-compose.yml")
    assert "useradd --system --uid 10001 --gid acme_chat" in read("deploy/Dockerfile")
    for unit in ("web.service", "web.socket", "ws.service", "ws.socket"):
        assert (acme_chat / "deploy" / "systemd" / f"acme_chat-{unit}").exists()
    unit = read("deploy/systemd/acme_chat-ws.service")
    assert "User=acme_chat" in unit and "Requires=acme_chat-ws.socket" in unit
    assert (acme_chat / "deploy" / "nginx" / "acme_chat.conf").exists()
    assert "upstream acme_chat_ws" in read(
        "deploy/nginx/templates/default.conf.template"
    )
    assert read("README.md").startswith("# acme_chat\n")
    assert "acme_chat" in read(".env.example")


def test_a_name_in_capitals_stays_valid_where_only_lowercase_is(archive, tmp_path):
    """Docker image names and Unix users are lowercase; modules and paths keep
    the name as given."""
    project = template.generate("AcmeChat", tmp_path, template=archive)
    compose = (project / "docker-compose.yml").read_text()
    images = re.findall(r"image: \$\{\w+:-([^}]+)\}", compose)
    assert "acmechat:latest" in images and "acmechat-nginx:latest" in images
    dockerfile = (project / "deploy" / "Dockerfile").read_text()
    assert "USER acmechat" in dockerfile
    assert "/srv/AcmeChat/static/" in dockerfile
    unit = (project / "deploy" / "systemd" / "AcmeChat-ws.service").read_text()
    assert "User=acmechat" in unit and "Requires=AcmeChat-ws.socket" in unit
    manage = (project / "manage.py").read_text()
    assert '"AcmeChat.settings"' in manage


def test_the_readme_gives_the_command_the_archive_needs():
    readme = README.read_text()
    command = template.COMMAND.format(archive="dist/chatroom-template.zip")
    assert command in " ".join(readme.split())
    assert "archive's URL" in readme or "URL of the archive" in readme


def test_the_archive_works_from_its_url_as_well(archive, tmp_path):
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(archive.parent)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{archive.name}"
        project = template.generate("from_url", tmp_path, template=url)
    finally:
        server.shutdown()
        server.server_close()
    assert '"from_url.settings"' in (project / "manage.py").read_text()


# --- The generated project's own two commands ------------------------------


def fresh_machine_env(project: Path) -> dict[str, str]:
    """The environment of someone who just generated the project: no venv of
    ours, no Django variables, this run's services if it has them."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "VIRTUAL_ENV", "PYTEST_", "LEVER_", "MAKE"))
        and key not in {"DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "MFLAGS"}
    }
    env["PATH"] = os.pathsep.join(
        part for part in env["PATH"].split(os.pathsep) if ".venv" not in part
    )
    env["PYTHON"] = shutil.which("python3.11") or sys.executable
    return env


@pytest.fixture(scope="module")
def installed(acme_chat) -> Path:
    """The generated project with its own virtualenv, as its Makefile makes it."""
    subprocess.run(
        ["make", "install-dev"], cwd=acme_chat, env=fresh_machine_env(acme_chat),
        check=True, capture_output=True, timeout=MAKE_TEST_TIMEOUT,
    )  # fmt: skip
    return acme_chat


def test_its_make_test_passes(installed, figure):
    env = fresh_machine_env(installed)
    if settings.REDIS_URL:  # this run has the real services: so does that one
        db = settings.DATABASES["default"]
        env |= {
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/generated",
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_PREFIX": "generated-project",
            "TESTS_REQUIRE_SERVICES": "1",
        }
    began = time.monotonic()
    result = subprocess.run(
        ["make", "test", "PYTEST_ARGS=-q -p no:cacheprovider"], cwd=installed, env=env,
        capture_output=True, text=True, timeout=MAKE_TEST_TIMEOUT,
    )  # fmt: skip
    took = time.monotonic() - began
    summary = re.findall(r"^=* ?(\d+ passed.*? in [\d.]+s).*$", result.stdout, re.M)
    figure("generated project: make test (s), installed", f"{took:.0f}: {summary}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert summary and " failed" not in summary[-1] and " error" not in summary[-1]


def test_its_make_run_serves_the_chat(installed, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"], cwd=installed,
        env=fresh_machine_env(installed), start_new_session=True,
        stdout=(tmp_path / "run.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                    assert json.load(response)["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.5)
        browser = sign_up(url, "first-user")
        browser.submit_form("/", {"title": "Hello", "slug": "hello"})
        with ws_connect(
            f"ws://127.0.0.1:{port}/ws/chat/hello/",
            origin=url,
            additional_headers={"Cookie": f"sessionid={browser.cookie('sessionid')}"},
            open_timeout=10,
        ) as socket:
            hello = json.loads(socket.recv(timeout=10))
        assert hello["type"] == "hello" and hello["user"] == "first-user"
        assert "levers on: uvloop" in (tmp_path / "run.log").read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_readme_layout_names_every_module_of_the_product():
    """The README's Layout section is where a reader finds their way: every
    module of the project, the app and the levers is in it."""
    readme = README.read_text()
    layout = readme[readme.index("## Layout") :]
    modules = [
        path
        for package in ("chatroom", "chat", "levers")
        for path in sorted((template.BASE_DIR / package).glob("*.py"))
        if path.name != "__init__.py"
    ]
    missing = [
        f"{path.parent.name}/{path.name}"
        for path in modules
        if not re.search(rf"\b{re.escape(path.name)}\b", layout)
    ]
    assert missing == []
