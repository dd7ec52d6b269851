"""
Scenario 4 of the browser tests: under plain `manage.py runserver` (WSGI, no
WebSocket) the room page still works: it posts over HTTP and new messages
arrive by polling.
"""

from playwright.sync_api import expect


def test_room_page_works_without_websockets_by_polling(person, servers):
    alice = person("alice", base_url=servers.runserver.url)
    alice.sign_up()
    slug = alice.create_room("Polling", state="polling")
    expect(alice.page.locator("#connection-status")).to_contain_text(
        "refreshing every few seconds"
    )

    alice.send("sent over HTTP")
    alice.expect_bodies(["sent over HTTP"])

    bob = person("bob", base_url=servers.runserver.url)
    bob.sign_up()
    bob.open_room(slug, state="polling")
    bob.send("and back")
    alice.expect_bodies(["sent over HTTP", "and back"])
    bob.expect_bodies(["sent over HTTP", "and back"])
