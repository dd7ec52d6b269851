"""
Scenario 5 of the browser tests: message text (and room titles) that look like
HTML or script show as literal text. No dialog opens and no element is
injected, whether the text arrives live, over HTTP, or rendered by the server
on a reload.
"""

from playwright.sync_api import expect

from chat.tests.payloads import XSS_PAYLOADS

from .people import two_in_a_room

# Sent over the socket by alice; the rest over HTTP by bob.
PAYLOADS, OVER_HTTP = XSS_PAYLOADS[:8], XSS_PAYLOADS[8:]

INJECTED = ", ".join(
    f"#messages {tag}"
    for tag in ("img", "script", "svg", "b", "a", "iframe", "details", "math", "style")
)


def test_html_and_script_in_messages_show_as_text(person, servers):
    alice, bob, slug = two_in_a_room(person, "Escaping")

    for payload in PAYLOADS:
        alice.send(payload)
    # Stored before bob posts, so the room's order is the list's order.
    alice.expect_bodies(PAYLOADS)
    for payload in OVER_HTTP:
        bob.post_over_http(servers.daphne.url, slug, payload)
    shown = XSS_PAYLOADS

    for someone in (alice, bob):
        someone.expect_bodies(shown)
        expect(someone.page.locator(INJECTED)).to_have_count(0)

    # Rendered by the server this time (the page's recent messages).
    bob.page.reload()
    bob.expect_state("live")
    bob.expect_bodies(shown)
    expect(bob.page.locator(INJECTED)).to_have_count(0)
    bob.page.locator("#messages").hover()
    assert alice.dialogs == bob.dialogs == []


def test_html_in_a_room_title_shows_as_text(person):
    alice = person("alice")
    alice.sign_up()
    title = "<img src=x onerror=alert(8)>Lounge"
    slug = alice.create_room(title)
    expect(alice.page.locator("#room-title")).to_have_text(title)
    alice.page.goto("/")
    expect(alice.page.locator(f'li.room[data-slug="{slug}"] a')).to_have_text(title)
    expect(alice.page.locator("#room-list img")).to_have_count(0)
    assert alice.dialogs == []


def test_the_content_security_policy_blocks_an_injected_inline_script(person):
    """Were a script ever injected into the page, the policy (script-src
    'self') keeps it from running; the page's own scripts run under it."""
    alice = person("alice")
    alice.sign_up()
    alice.create_room("Policy")  # live: the page's scripts and socket work
    violation = alice.page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener("securitypolicyviolation", (event) => {
                const {effectiveDirective, blockedURI} = event;
                resolve({directive: effectiveDirective, blocked: blockedURI});
            }, {once: true});
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.append(script);
        })"""
    )
    assert violation == {"directive": "script-src-elem", "blocked": "inline"}
    assert alice.page.evaluate("window.injected") is None
    alice.send("still live")
    alice.expect_bodies(["still live"])
