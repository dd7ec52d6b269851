"""
Scenario 6 of the browser tests: bad input in the page gets a visible message
a person understands, never a blank page or a stack trace.
"""

from playwright.sync_api import expect


def test_empty_and_blank_messages_are_not_sent(person):
    alice = person("alice")
    alice.sign_up()
    alice.create_room("Quiet")
    for text in ("", "   \n  "):
        alice.send(text)
        expect(alice.page.locator("#send-error")).to_be_visible()
        expect(alice.page.locator("#send-error")).to_have_text("Type a message first.")
    expect(alice.messages()).to_have_count(0)


def test_a_message_over_the_limit_is_explained_and_kept(person):
    alice = person("alice")
    alice.sign_up()
    alice.create_room("Long")
    too_long = "a" * 2001
    box = alice.page.locator("#message-input")
    box.fill(too_long)
    error = alice.page.locator("#send-error")
    # Said while typing, before any attempt to send...
    expect(error).to_have_text(
        "Messages can be at most 2,000 characters; this one has 2,001."
    )
    expect(box).to_have_attribute("aria-invalid", "true")
    # ...and sending does not lose the text or store anything.
    box.press("Enter")
    expect(error).to_be_visible()
    expect(box).to_have_value(too_long)
    expect(alice.messages()).to_have_count(0)

    box.press("Backspace")  # 2,000: allowed again
    expect(error).to_be_hidden()
    box.press("Enter")
    expect(alice.messages()).to_have_count(1)


def test_text_typed_before_the_script_runs_is_checked_when_it_does(person):
    """A slow network: the page is there and the reader types before room.js
    has arrived. Its input events went unheard; the script checks the box as
    soon as it runs."""
    alice = person("alice")
    alice.sign_up()
    slug = alice.create_room("Slow")
    held = []

    def hold(route) -> None:
        held.append(route)

    alice.page.route("**/chat/room*.js", hold)  # its hashed name too
    alice.page.goto(f"/rooms/{slug}/", wait_until="commit")
    box = alice.page.locator("#message-input")
    box.fill("b" * 2001)
    for _ in range(100):  # until the browser has asked for the script
        if held:
            break
        alice.page.wait_for_timeout(50)
    assert held, "the page never asked for room.js"
    expect(alice.page.locator("#send-error")).to_be_hidden()  # nobody listening yet
    held[0].continue_()
    expect(alice.page.locator("#send-error")).to_have_text(
        "Messages can be at most 2,000 characters; this one has 2,001."
    )
    expect(box).to_have_attribute("aria-invalid", "true")


def test_a_room_that_does_not_exist_says_so(person):
    alice = person("alice")
    alice.sign_up()
    response = alice.page.goto("/rooms/no-such-room/")
    assert response.status == 404
    expect(alice.page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(alice.page.get_by_role("link", name="Back to the rooms")).to_be_visible()
    expect(alice.page.locator("body")).not_to_contain_text("Traceback")


def test_bad_forms_show_what_is_wrong(person):
    alice = person("alice")
    alice.sign_up()
    alice.page.goto("/")
    form = alice.page.locator("#room-form")
    form.locator('input[name="title"]').fill("Spaces")
    form.locator('input[name="slug"]').fill("not a slug!")
    form.get_by_role("button", name="Create room").click()
    expect(form.locator(".errorlist")).to_contain_text("slug")

    stranger = person("stranger")
    stranger.page.goto("/accounts/login/")
    login = stranger.page.locator("#login-form")
    login.locator('input[name="username"]').fill(stranger.name)
    login.locator('input[name="password"]').fill("wrong password")
    login.get_by_role("button", name="Log in").click()
    expect(login.locator(".form-errors")).to_contain_text("correct username")
