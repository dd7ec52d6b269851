"""
The reckoning after a fault: what the clients of a room hold against what
PostgreSQL stored, and what became of the sends made while a service was down.
"""

from collections import Counter
from dataclasses import dataclass

from .chatters import ChatClient
from .cluster import StoredMessage


class BrokenPromise(AssertionError):
    """The failure of the one check that shows a known product bug. Such a test
    is marked xfail(strict=True, raises=BrokenPromise): any other failure of
    it still fails, and so does its passing once the bug is fixed."""


@dataclass
class Tally:
    stored: int
    lost: int  # stored messages some client does not hold (summed over clients)
    phantom: int  # held by a client, not stored
    duplicated: int  # stored more than once (same author and body)
    unstored: int  # sent (over the socket or HTTP), never stored
    wrong_prev_id: int  # live frames whose prev_id is not the stored predecessor
    replay_out_of_order: int  # resume replays not in increasing id order
    gaps: int  # gaps noticed by prev_id, each filled by a resume
    resends: int  # sends repeated with the same client_id

    def problems(self) -> dict[str, int]:
        names = ("lost", "phantom", "duplicated", "unstored", "wrong_prev_id")
        names += ("replay_out_of_order",)
        return {name: getattr(self, name) for name in names if getattr(self, name)}


def tally(
    clients: list[ChatClient],
    stored: list[StoredMessage],
    http_posts: dict[str, str] | None = None,
    http_author: str = "",
) -> Tally:
    ids = [message.id for message in stored]
    predecessor = dict(zip(ids, [None, *ids[:-1]], strict=True))
    stored_ids = set(ids)
    stored_keys = {(m.author, m.client_id) for m in stored}
    sent = [(c.name, client_id) for c in clients for client_id in c.sent]
    sent += [(http_author, client_id) for client_id in http_posts or {}]
    bodies = Counter((m.author, m.body) for m in stored)
    return Tally(
        stored=len(stored),
        lost=sum(len(stored_ids - c.held.keys()) for c in clients),
        phantom=sum(len(c.held.keys() - stored_ids) for c in clients),
        duplicated=sum(n - 1 for n in bodies.values()),
        unstored=sum(1 for key in sent if key not in stored_keys),
        wrong_prev_id=sum(
            1
            for c in clients
            for message_id, prev in c.live_prev.items()
            if message_id in predecessor and predecessor[message_id] != prev
        ),
        replay_out_of_order=sum(c.replay_out_of_order for c in clients),
        gaps=sum(c.gaps for c in clients),
        resends=sum(c.resends for c in clients),
    )


def longest_reconnect(clients: list[ChatClient]) -> float:
    """Seconds from a socket's loss to the hello of the next, at most."""
    return max((t for c in clients for t in c.reconnect_times), default=0.0)


def record_tally(figure, label: str, result: Tally, clients: list[ChatClient]):
    figure(f"{label}: reconnect time max (s)", round(longest_reconnect(clients), 2))
    figure(f"{label}: lost / duplicated", f"{result.lost} / {result.duplicated}")
    figure(f"{label}: messages stored", result.stored)
    figure(
        f"{label}: gaps filled by resume / sends repeated with the same client_id",
        f"{result.gaps} / {result.resends}",
    )


def assert_everyone_holds_what_was_stored(result: Tally, clients: list[ChatClient]):
    assert result.problems() == {}, result
    for client in clients:
        assert client.crash is None, (client.name, client.crash)
        assert client.final_close is None, (client.name, client.final_close)


def close_codes(clients: list[ChatClient]) -> dict[int | None, int]:
    return dict(Counter(code for c in clients for code in c.close_codes))


def error_codes(clients: list[ChatClient]) -> dict[str, int]:
    return dict(Counter(code for c in clients for _when, code, _id in c.errors))


def sends_between(clients: list[ChatClient], start: float, end: float):
    """(client, client_id, first sent at) of the sends first made in [start, end]."""
    return [
        (client, client_id, sent_at)
        for client in clients
        for client_id, sent_at in client.sent_at.items()
        if start <= sent_at <= end
    ]


def outcomes(clients, stored: list[StoredMessage], start, end) -> dict[str, int]:
    """What became of the sends made between start and end: stored in the end,
    refused with an error frame, or neither (dropped without a word)."""
    stored_keys = {(m.author, m.client_id) for m in stored}
    outcome = Counter({"stored": 0, "error frame": 0, "neither": 0})
    for client, client_id, _sent_at in sends_between(clients, start, end):
        if (client.name, client_id) in stored_keys:
            outcome["stored"] += 1
        elif any(cid == client_id for _when, _code, cid in client.errors):
            outcome["error frame"] += 1
        else:
            outcome["neither"] += 1
    return dict(outcome)


def longest_wait_for_an_answer(clients, start: float, end: float) -> float:
    """Of the sends made between start and end, the longest time until the first
    echo or error frame."""
    return max(
        (
            client.answered_at.get(client_id, float("inf")) - sent_at
            for client, client_id, sent_at in sends_between(clients, start, end)
        ),
        default=0.0,
    )


def answered_by(clients, start: float, end: float, deadline: float) -> list[bool]:
    """For each send made between start and end: answered before the deadline?"""
    return [
        client.answered_at.get(client_id, deadline) < deadline
        for client, client_id, _sent_at in sends_between(clients, start, end)
    ]


def unavailable_after(clients: list[ChatClient], moment: float) -> int:
    """ "unavailable" answers to sends transmitted after `moment`."""
    failed = 0
    for client in clients:
        for when, code, client_id in client.errors:
            transmitted = [
                t for t, cid in client.transmissions if cid == client_id and t <= when
            ]
            failed += code == "unavailable" and max(transmitted, default=0) >= moment
    return failed


def unavailable_between(clients: list[ChatClient], start: float, end: float) -> int:
    """ "unavailable" answers received between start and end."""
    return sum(
        1
        for client in clients
        for when, code, _client_id in client.errors
        if code == "unavailable" and start <= when <= end
    )
