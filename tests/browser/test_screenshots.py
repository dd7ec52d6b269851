"""
Scenario 7 of the browser tests: the lobby, a room and the login page look
right. Each is saved as a PNG under test-output/screenshots/ (ignored by git)
for a person to look at, and checked for the elements people rely on.
"""

import struct

from playwright.sync_api import expect

from ..processes import BASE_DIR

SCREENSHOTS = BASE_DIR / "test-output" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def save(page, name: str) -> None:
    # Nothing of the templates' own syntax leaks onto the page.
    for leak in ("{#", "{%", "{{", "#}", "%}", "}}"):
        expect(page.locator("body")).not_to_contain_text(leak)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    assert width == VIEWPORT["width"] and height >= 300, (path, width, height)


def test_login_page(person):
    visitor = person("visitor")
    visitor.page.set_viewport_size(VIEWPORT)
    visitor.page.goto("/accounts/login/")
    expect(visitor.page.get_by_role("heading", level=1)).to_be_visible()
    form = visitor.page.locator("#login-form")
    for field in ("username", "password"):
        expect(form.locator(f'input[name="{field}"]')).to_be_visible()
    expect(form.get_by_role("button", name="Log in")).to_be_enabled()
    nav = visitor.page.get_by_role("navigation", name="Account")
    expect(nav.get_by_role("link", name="Sign up")).to_be_visible()
    save(visitor.page, "login")


def test_lobby_and_room_pages(person):
    alice = person("alice")
    alice.page.set_viewport_size(VIEWPORT)
    alice.sign_up()
    slug = alice.create_room("Screenshots")
    alice.expect_state("live")  # the screenshot is of a live room
    alice.send("Hello, world")
    alice.send("A second message, a little longer, to show how text wraps.")
    expect(alice.messages()).to_have_count(2)

    expect(alice.page.locator("#room-title")).to_have_text("Screenshots")
    expect(alice.page.locator("#connection-status")).to_have_text("Live")
    expect(
        alice.page.locator(f'#presence li[data-user="{alice.name}"]')
    ).to_be_visible()
    expect(alice.page.locator("#message-input")).to_be_visible()
    expect(alice.page.locator("#send-button")).to_be_enabled()
    expect(alice.page.locator("#send-error")).to_be_hidden()
    save(alice.page, "room")

    alice.page.goto("/")
    expect(alice.page.get_by_role("heading", name="Rooms")).to_be_visible()
    expect(
        alice.page.locator(f'#room-list li.room[data-slug="{slug}"]')
    ).to_be_visible()
    expect(alice.page.locator("#room-form")).to_be_visible()
    expect(alice.page.locator(".signed-in")).to_contain_text(alice.name)
    save(alice.page, "lobby")
