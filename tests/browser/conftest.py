"""
Fixtures of the browser tests: the servers (servers.py), one headless Debian
Chromium for the session driven by Playwright, and people, each in a browser
context of their own (cookies, tabs) that notes every dialog the page opens.
"""

import os
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from .people import Person
from .servers import start_servers

INSTALL_HINT = (
    "The browser tests drive Debian's Chromium and cannot find it. Install it "
    "with `sudo apt-get install chromium` (`make test` does it when run as "
    "root), or point CHROMIUM_PATH at a Chromium or Chrome binary."
)
# Assertions on the page wait for the condition, up to this long.
expect.set_options(timeout=15_000)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


@pytest.fixture(scope="package")
def servers(tmp_path_factory):
    started = start_servers(tmp_path_factory.mktemp("browser-servers"))
    yield started
    started.stop()


# Package scope: Playwright's sync API keeps an event loop running in this
# thread while it is open, which the async tests elsewhere cannot share.
@pytest.fixture(scope="package")
def chromium():
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            # As root (CI), Chromium's sandbox cannot start; the network flags
            # keep it from calling home on a machine without internet.
            args=[
                *(["--no-sandbox"] if os.geteuid() == 0 else []),
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def person(chromium, servers):
    """Make a person: person("alice") has a context and a page of their own."""
    made: list[Person] = []

    def make(name: str, *, base_url: str | None = None) -> Person:
        someone = Person.new(chromium, name, base_url or servers.daphne.url)
        made.append(someone)
        return someone

    yield make
    for someone in made:
        someone.close()
