"""
The systemd units of deploy/systemd/: systemd accepts them, and the servers
they start answer on the Unix socket systemd opened for them. systemd's own
systemd-socket-activate stands in for systemd: it holds the socket and starts
the start script on the first connection, which waits in the backlog until the
server answers it.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[1]
UNITS_DIR = BASE_DIR / "deploy" / "systemd"
ACTIVATE = shutil.which("systemd-socket-activate")
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(
    ACTIVATE is None or ANALYZE is None,
    reason="systemd's tools (Debian package systemd) are not installed",
)


def test_systemd_accepts_the_units():
    units = sorted(path.name for path in UNITS_DIR.iterdir())
    assert units == [
        "chatroom-web.service",
        "chatroom-web.socket",
        "chatroom-ws.service",
        "chatroom-ws.socket",
    ]
    result = subprocess.run(
        [ANALYZE, "verify", *units],
        cwd=UNITS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def unit_command(unit: str) -> tuple[dict[str, str], str]:
    """The variables and script of a unit's `ExecStart=/usr/bin/env VAR=... script`."""
    text = (UNITS_DIR / unit).read_text()
    command = re.search(r"^ExecStart=/usr/bin/env (.+)$", text, re.M).group(1)
    *assignments, script = command.split()
    variables = dict(assignment.split("=", 1) for assignment in assignments)
    return variables, script.removeprefix("/srv/chatroom/")


@pytest.mark.parametrize("unit", ["chatroom-web.service", "chatroom-ws.service"])
def test_server_answers_on_the_socket_systemd_opened(tmp_path, unit):
    path = tmp_path / "server.sock"
    variables, script = unit_command(unit)
    # The tool starts the server with only the variables it is given, as
    # systemd does with the unit's environment.
    variables |= {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "WEB_CONCURRENCY": "1",
    }
    setenv = [f"--setenv={name}={value}" for name, value in variables.items()]
    server = subprocess.Popen(
        # systemd names every socket it passes (LISTEN_FDNAMES); so does this.
        [
            ACTIVATE,
            f"--listen={path}",
            "--fdname=chatroom",
            *setenv,
            str(BASE_DIR / script),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        reply = first_reply(path, server)
    except OSError as error:
        reply = repr(error).encode()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert reply.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")), output
    assert reply.endswith(b'{"status": "ok"}'), output


def first_reply(path: Path, server: subprocess.Popen) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(30)
        connect_once_listening(client, path, server)
        client.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        chunks = []
        while chunk := client.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def connect_once_listening(client: socket.socket, path: Path, server) -> None:
    # The file appears at bind(), a moment before listen(): until then a
    # connection is refused, so retry for a bounded while.
    for _ in range(200):
        try:
            client.connect(str(path))
            return
        except (FileNotFoundError, ConnectionRefusedError):
            if server.poll() is not None:
                raise
            time.sleep(0.05)
    client.connect(str(path))


def test_the_websocket_server_may_hold_ten_thousand_sockets():
    """A socket is a file descriptor, and systemd's default soft limit is 1,024:
    the unit raises it for Daphne (nginx raises its own, worker_rlimit_nofile)."""
    unit = (UNITS_DIR / "chatroom-ws.service").read_text()
    limit = re.search(r"^LimitNOFILE=(\d+)$", unit, re.MULTILINE)
    assert limit is not None and int(limit[1]) >= 10_000 + 1_024
