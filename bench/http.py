"""
HTTP benchmarks with wrk: the minimal view and the room's history API under
gunicorn (sync workers, and gthread), Daphne, and runserver; the minimal view
also as CGI (wsgiref's CGIHandler behind http.server's CGI support: one new
process per request), the model the WSGI and ASGI documentation starts from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .measure import ProcessMeter
from .targets import (
    BASE_DIR,
    BIN,
    Project,
    analyze_database,
    free_port,
    fresh_database,
    stop_process,
    wait_listening,
)


def wrk(
    url: str,
    seconds: int,
    cookie: str | None = None,
    connections: int = 16,
    script: Path | None = None,
) -> dict:
    command = ["wrk", "--threads", "2", "--connections", str(connections),
               "--duration", f"{seconds}s", "--latency", url]  # fmt: skip
    if cookie:
        command[1:1] = ["--header", f"Cookie: {cookie}"]
    if script:
        command[1:1] = ["--script", str(script)]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_s": round(rate),
        "p99_ms": round(float(p99.group(1)) * scale, 2),
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def warm_up(url: str, cookie: str | None, timeout: float = 30) -> None:
    """Wait until the server answers `url`: its workers may still be importing
    Django when the port already listens, and a short wrk run would count that."""
    headers = {"Cookie": cookie} if cookie else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)


def servers(env: dict[str, str], cgi_dir: Path) -> dict[str, tuple[list[str], dict]]:
    """Name -> (command, extra environment), each to be given a port."""
    web = str(BASE_DIR / "deploy" / "start-web.sh")
    python = str(BIN / "python")
    cores = os.cpu_count() or 1
    # gunicorn keeps its database connections, as in docker-compose.yml.
    keep = {"DB_CONN_MAX_AGE": "60"}
    return {
        "gunicorn sync": ([web], {**keep, "WEB_CONCURRENCY": str(2 * cores + 1)}),
        "gunicorn gthread": (
            [web],
            {**keep, "WEB_CONCURRENCY": str(cores), "GUNICORN_THREADS": "8"},
        ),
        "Daphne": ([str(BASE_DIR / "deploy" / "start-ws.sh")], {}),
        "runserver": ([python, "manage.py", "runserver", "--noreload"], keep),
        "CGI": ([python, "-m", "bench.cgi_server"], {"CGI_DIR": str(cgi_dir)}),
    }


def start(name: str, command: list[str], extra: dict, env: dict, log: Path):
    port = free_port()
    extra = {**extra, "GUNICORN_BIND": f"127.0.0.1:{port}",
             "DAPHNE_BIND": "127.0.0.1", "DAPHNE_PORT": str(port)}  # fmt: skip
    if name == "runserver":
        command = [*command, f"127.0.0.1:{port}"]
    cwd = BASE_DIR
    if name == "CGI":
        command, cwd = [*command, str(port)], extra["CGI_DIR"]
        extra["PYTHONPATH"] = str(BASE_DIR)
    process = subprocess.Popen(
        command, cwd=cwd, env={**env, **extra}, stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_listening(port, process, log)
    return process, port


# A CSRF secret of our own (Django accepts the unmasked secret as the token),
# sent as both the cookie and the header, as the page's script does.
CSRF_SECRET = "benchbenchbenchbenchbenchbench42"


def post_script(log_dir: Path) -> Path:
    """wrk's Lua script for POSTing messages to the JSON API; the server makes
    each one a client_id, so every request stores a new message."""
    script = log_dir / "post-message.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.body = \'{"body": "benchmark message"}\'\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-CSRFToken"] = "{CSRF_SECRET}"\n'
    )
    return script


def cgi_site() -> Path:
    """A cgi-bin/ whose one script serves the project's WSGI app as CGI."""
    root = Path(tempfile.mkdtemp(prefix="chatroom-cgi-"))
    (root / "cgi-bin").mkdir()
    script = root / "cgi-bin" / "chatroom.py"
    script.write_text(
        f"#!{BIN / 'python'}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(BASE_DIR)!r})\n"
        "from wsgiref.handlers import CGIHandler\n"
        "from chatroom.wsgi import application\n"
        "CGIHandler().run(application)\n"
    )
    script.chmod(0o755)
    return root


# The endpoints: a view that does nothing, the same for a logged-in user (it
# reads request.user), and the history API's newest page of a 50-message room.
MINIMAL = "/bench/minimal/"
MINIMAL_LOGGED_IN = "/bench/minimal-logged-in/"
HISTORY = "/api/rooms/bench-0/messages/"


def site(log_dir: Path) -> tuple[dict[str, str], str]:
    """The servers' environment, with the static files collected and the room
    `bench-0` seeded with 50 messages; and the session cookie of its user."""
    project = Project("http", "chatroom", "")
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        **project.environment(),
        "DJANGO_SETTINGS_MODULE": "bench.http_site",
        "DJANGO_STATIC_ROOT": str(log_dir / "static"),
    }
    subprocess.run(
        [str(BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR, env=env, check=True,
    )  # fmt: skip
    cookie = json.loads(
        subprocess.run(
            [str(BIN / "python"), "-m", "bench.project", "--users", "1",
             "--rooms", "1", "--messages", "50"],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True,
        ).stdout
    )[0]  # fmt: skip
    analyze_database()
    return env, cookie


def scenarios(seconds: int, log_dir: Path) -> list[dict]:
    env, cookie = site(log_dir)
    cgi_dir = cgi_site()
    posting = post_script(log_dir)
    rows = []
    try:
        for name, (command, extra) in servers(env, cgi_dir).items():
            log = log_dir / f"http-{name.replace(' ', '-')}.log"
            process, port = start(name, command, extra, env, log)
            try:
                paths = {"minimal view": MINIMAL}
                if name != "CGI":
                    paths["minimal view, logged in"] = MINIMAL_LOGGED_IN
                    paths["history API"] = HISTORY
                else:
                    paths = {"minimal view": f"/cgi-bin/chatroom.py{MINIMAL}"}
                if name in ("gunicorn sync", "gunicorn gthread"):
                    # Stored, then broadcast to the room through Redis.
                    paths["post message"] = HISTORY
                warm_up(f"http://127.0.0.1:{port}{paths['minimal view']}", cookie)
                for what, path in paths.items():
                    # CGI starts a Python process per request: few at a time,
                    # and long enough for some to finish.
                    cgi = name == "CGI"
                    length = max(seconds, 5) if cgi else seconds
                    with ProcessMeter(process.pid) as meter:
                        post = what == "post message"
                        figures = wrk(
                            f"http://127.0.0.1:{port}{path}",
                            length,
                            f"{cookie}; csrftoken={CSRF_SECRET}" if post else cookie,
                            connections=2 if cgi else 16,
                            script=posting if post else None,
                        )
                    used = meter.summary()
                    cpu_ms = (
                        10 * used["cpu_percent"] * length / max(1, figures["requests"])
                    )
                    rows.append({
                        "scenario": "http", "server": name, "endpoint": what,
                        **figures, "server_cpu_percent": used["cpu_percent"],
                        "cpu_ms_per_request": round(cpu_ms, 2),
                    })  # fmt: skip
                    print(json.dumps(rows[-1]))
            finally:
                stop_process(process)
    finally:
        shutil.rmtree(cgi_dir, ignore_errors=True)
    return rows


if __name__ == "__main__":
    # On their own (python -m bench.http [seconds]): a new benchmark database.
    fresh_database()
    print(json.dumps(scenarios(int(sys.argv[1]) if len(sys.argv) > 1 else 3,
                               Path(tempfile.mkdtemp())), indent=1))  # fmt: skip
