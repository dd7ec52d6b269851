"""
A person using the chat in their own browser context, doing what a person
does: sign up, log in, create and open rooms, type and send. Selectors are the
page's stable ids and data attributes, nothing test-only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from playwright.sync_api import Browser, BrowserContext, Page, expect

PASSWORD = "a-long-browser-test-password-42"


@dataclass
class Person:
    name: str
    base_url: str
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)

    @classmethod
    def new(cls, browser: Browser, name: str, base_url: str) -> Person:
        context = browser.new_context(base_url=base_url)
        context.set_default_timeout(15_000)
        page = context.new_page()
        # Unique per run, so that the shared database never has it already.
        someone = cls(f"{name}-{uuid.uuid4().hex[:6]}", base_url, context, page)
        page.on("dialog", someone._on_dialog)
        return someone

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def close(self) -> None:
        self.context.close()

    # --- accounts -------------------------------------------------------------------

    def sign_up(self) -> None:
        self.page.goto("/accounts/signup/")
        form = self.page.locator("#signup-form")
        form.locator('input[name="username"]').fill(self.name)
        form.locator('input[name="password1"]').fill(PASSWORD)
        form.locator('input[name="password2"]').fill(PASSWORD)
        form.get_by_role("button", name="Create account").click()
        expect(self.page.locator("#room-list")).to_be_visible()

    def log_out(self) -> None:
        self.page.get_by_role("button", name="Log out").click()
        expect(self.page.get_by_role("link", name="Log in").first).to_be_visible()

    def log_in(self) -> None:
        self.page.goto("/accounts/login/")
        form = self.page.locator("#login-form")
        form.locator('input[name="username"]').fill(self.name)
        form.locator('input[name="password"]').fill(PASSWORD)
        form.get_by_role("button", name="Log in").click()
        expect(self.page.locator("#room-list")).to_be_visible()

    # --- rooms ----------------------------------------------------------------------

    def create_room(self, title: str, *, state: str = "live") -> str:
        """Create a room and wait in it until its script has connected (or, with
        state="polling", fallen back to polling): only then does it hear keys."""
        slug = f"room-{uuid.uuid4().hex[:8]}"
        self.page.goto("/")
        form = self.page.locator("#room-form")
        form.locator('input[name="title"]').fill(title)
        form.locator('input[name="slug"]').fill(slug)
        form.get_by_role("button", name="Create room").click()
        expect(self.page).to_have_url(f"{self.base_url}/rooms/{slug}/")
        self.expect_state(state)
        return slug

    def open_room(self, slug: str, *, state: str = "live") -> None:
        self.page.goto(f"/rooms/{slug}/")
        self.expect_state(state)

    def expect_state(self, state: str) -> None:
        expect(self.page.locator("#connection-status")).to_have_attribute(
            "data-state", state
        )

    # --- chatting -------------------------------------------------------------------

    def send(self, text: str) -> None:
        box = self.page.locator("#message-input")
        box.fill(text)
        box.press("Enter")

    def messages(self):
        return self.page.locator("#messages li.message")

    def bodies(self) -> list[str]:
        return self.messages().locator(".body").all_text_contents()

    def authors(self) -> list[str]:
        return self.messages().locator(".author").all_text_contents()

    def expect_bodies(self, bodies: list[str]) -> None:
        expect(self.messages().locator(".body")).to_have_text(bodies)

    def post_over_http(self, base_url: str, slug: str, body: str) -> int:
        """POST to the JSON API with this person's cookies, as a script would."""
        token = next(
            c["value"] for c in self.context.cookies() if c["name"] == "csrftoken"
        )
        response = self.context.request.post(
            f"{base_url}/api/rooms/{slug}/messages/",
            data={"body": body},
            headers={"X-CSRFToken": token},
        )
        assert response.status == 201, response.text()
        return response.json()["id"]


def two_in_a_room(person, title: str) -> tuple[Person, Person, str]:
    """Alice signs up and creates a room; Bob signs up and opens it. Both live."""
    alice = person("alice")
    alice.sign_up()
    slug = alice.create_room(title)
    bob = person("bob")
    bob.sign_up()
    bob.open_room(slug)
    return alice, bob, slug
