"""
Fixtures of the stack test: one compose stack for the whole session, scaled to
several gunicorn and Daphne replicas, torn down at the end. When a test fails,
the logs of every container are printed with it.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from .actions import sign_up
from .clients import Session
from .stack import Stack

SCALE = {"web": 2, "ws": 3}


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and call.when == "call":
        item.session.stack_failed = True


@pytest.fixture(scope="session")
def stack(tmp_path_factory, request):
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail(
            "No Docker engine answers. Run `make stack-test`, which installs and "
            "starts one (lab/offline/ensure-engine.sh)."
        )
    stack = Stack(
        project=f"chatroom-stack-{os.getpid()}",
        workdir=tmp_path_factory.mktemp("stack"),
        scale=SCALE,
    )
    stack.write_config()
    try:
        stack.up()
    except BaseException:  # a failure, a timeout or ^C: leave nothing behind
        stack.down()
        raise
    yield stack
    if getattr(request.session, "stack_failed", False):
        print(f"\n===== logs of every container =====\n{stack.logs(tail=150)}")
    stack.down()
    leftovers = stack.leftovers()
    assert not leftovers, f"left behind after `down`: {leftovers}"


@pytest.fixture(scope="session")
def people(stack) -> list[Session]:
    """Three signed-up users, shared by the chat tests."""
    return [sign_up(stack, f"user{n}-{uuid.uuid4().hex[:6]}") for n in range(3)]


@pytest.fixture
def browser(stack) -> Session:
    """A fresh visitor with its own cookie jar."""
    return Session(stack.origin, str(stack.ca_file))
