"""
Scenarios 1 and 2 of the browser tests: two people chat live in one room,
each in a browser of their own, and see who is there and who is typing.
"""

from playwright.sync_api import expect


def test_two_people_chat_live_in_order_with_the_right_authors(person):
    alice = person("alice")
    alice.sign_up()
    slug = alice.create_room("Tea break")
    alice.expect_state("live")

    bob = person("bob")
    bob.sign_up()
    bob.log_out()
    bob.log_in()
    bob.page.locator(f'#room-list li.room[data-slug="{slug}"] a').click()
    bob.expect_state("live")

    alice.send("Hello Bob")
    bob.expect_bodies(["Hello Bob"])
    bob.send("Hi Alice!")
    alice.send("How are you?")
    bob.send("Fine, thanks")

    conversation = ["Hello Bob", "Hi Alice!", "How are you?", "Fine, thanks"]
    authors = [alice.name, bob.name, alice.name, bob.name]
    for someone in (alice, bob):
        someone.expect_bodies(conversation)
        expect(someone.messages().locator(".author")).to_have_text(authors)
    # Nothing was reloaded: both pages are the ones first opened.
    assert alice.page.url.endswith(f"/rooms/{slug}/")
    assert bob.page.url.endswith(f"/rooms/{slug}/")


def test_people_see_who_is_here_and_who_is_typing(person):
    alice = person("alice")
    alice.sign_up()
    slug = alice.create_room("Who is here")
    expect(alice.page.locator("#presence li")).to_have_text([alice.name])
    expect(alice.page.locator(f'#presence li[data-user="{alice.name}"]')).to_have_class(
        "me"
    )

    bob = person("bob")
    bob.sign_up()
    bob.open_room(slug)
    for someone in (alice, bob):
        expect(someone.page.locator("#presence li")).to_have_text(
            sorted([alice.name, bob.name])
        )

    bob.page.locator("#message-input").press_sequentially("typing away", delay=20)
    expect(alice.page.locator("#typing")).to_contain_text(bob.name)
    expect(bob.page.locator("#typing")).to_be_empty()

    bob.close()
    expect(alice.page.locator("#presence li")).to_have_text([alice.name])


def test_a_rooms_roster_comes_a_page_at_a_time(person):
    """The browser servers send rosters in pages of two (servers.py)."""
    people = [person(name) for name in ("alice", "bob", "carol")]
    first, *others = people
    first.sign_up()
    slug = first.create_room("Crowded")
    for someone in others:
        someone.sign_up()
        someone.open_room(slug)
    everyone = sorted(someone.name for someone in people)
    # Those already there heard of the others coming: changes, not pages.
    for someone in people[:2]:
        expect(someone.page.locator("#presence li")).to_have_text(everyone)
        expect(someone.page.locator("#presence-more")).to_be_hidden()
    last = people[2]
    expect(last.page.locator("#presence-count")).to_have_text("3 people")
    expect(last.page.locator("#presence li")).to_have_count(2)
    last.page.locator("#presence-more").click()
    expect(last.page.locator("#presence li")).to_have_text(everyone)
    expect(last.page.locator("#presence-more")).to_be_hidden()
