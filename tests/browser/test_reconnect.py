"""
Scenario 3 of the browser tests: the WebSocket server (Daphne) stops while two
pages are open. The pages say they are reconnecting; what the other person
posts meanwhile through the HTTP API of the WSGI server (gunicorn, still up) is
stored; when Daphne is back each page reconnects by itself and shows exactly
the missed messages, once each, in order.
"""

from playwright.sync_api import expect

from .people import two_in_a_room


def test_pages_reconnect_and_show_exactly_what_they_missed(person, servers):
    alice, bob, slug = two_in_a_room(person, "Outage")
    alice.send("before the outage")
    bob.expect_bodies(["before the outage"])

    servers.stop_daphne()
    try:
        for someone in (alice, bob):
            someone.expect_state("reconnecting")
            expect(someone.page.locator("#connection-status")).to_have_text(
                "Reconnecting…"
            )
        missed = [f"missed {n}" for n in range(1, 4)]
        for body in missed:
            bob.post_over_http(servers.gunicorn.url, slug, body)
    finally:
        servers.start_daphne()

    for someone in (alice, bob):
        someone.expect_state("live")
        someone.expect_bodies(["before the outage", *missed])
        ids = someone.messages().evaluate_all("items => items.map(li => li.dataset.id)")
        assert len(ids) == len(set(ids)) == 4
        assert ids == sorted(ids, key=int)
