"""
A disconnect storm on one Daphne process (deploy/start-ws.sh, the production
settings) with a Redis of the test's own, the sockets held by the processes of
the benchmark's load generator (bench/loadgen.py): 10,000 sockets in 100 rooms,
1,000 users, drop at once when those processes are killed. Afterwards the
channel layer keeps no subscription in Redis, presence lists nobody, Daphne
serves, and a broadcast to a fresh client in those rooms costs what it cost
before (a figure, as are memory, file descriptors and timings).

Consumers that Daphne kills at --application-close-timeout, mid-disconnect,
are shown on a smaller scale with a timeout of 0: they too leave nothing.

The other load tests: test_load_delivery.py (5,000 sockets chatting, nothing
lost) and test_load_nginx.py (1,000 sockets in one room through nginx).
"""

import asyncio
import time

import pytest

from bench.loadgen import Load, hold

from .cluster import django_database_url
from .load_rig import (
    KILLED,
    Rig,
    one_daphne,
    round_trips,
    seed,
    summarize_ms,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOMS = 100
USERS = 1_000
SOCKETS = 10_000
# Load generator processes, and handshakes each keeps in flight: gentle enough
# for a 2-core machine shared with the server (and other test runs).
PROCESSES = 4
CONNECT_CONCURRENCY = 12
SETTLE_TIMEOUT = 120  # seconds for Daphne to run every disconnect handler
PRESENCE_TTL = 60  # CHAT_PRESENCE_TTL's default: the longest an entry may stay
PROBE_ROOMS = 5  # rooms where a broadcast round trip is timed, 3 sends each


def storm(rig: Rig, cookies: list[str], sockets: int) -> dict:
    """Open `sockets` sockets over ROOMS rooms, kill the processes holding
    them, and watch Daphne and Redis settle. Broadcasts to a fresh client in
    PROBE_ROOMS of the rooms are timed before, while held and after."""
    seen = {"baseline": rig.subscriptions()}
    step = ROOMS // PROBE_ROOMS
    # A sender and a receiver, users of their own (the rate limit is per user).
    pairs = [
        (f"bench-{n * step}", cookies[2 * n], cookies[2 * n + 1])
        for n in range(PROBE_ROOMS)
    ]

    def probe(name: str) -> None:
        seen[name] = asyncio.run(round_trips(rig.url, rig.origin, pairs))

    probe("rt_before")
    wait_until(lambda: rig.subscriptions() == seen["baseline"], 30)
    seen["before"] = rig.vitals()
    load = Load(
        urls=[rig.url], protocol="chatroom", rooms=ROOMS, clients=sockets // ROOMS,
        rate=0, duration=0, drain=0, cookies=cookies, origin=rig.origin,
        processes=PROCESSES, connect_concurrency=CONNECT_CONCURRENCY,
    )  # fmt: skip
    began = time.monotonic()
    with hold(load) as held:
        seen["opened_s"] = round(time.monotonic() - began, 1)
        seen["held"] = held
        seen["holding_subs"] = rig.subscriptions()
        seen["holding"] = rig.vitals()
        probe("rt_holding")
        # The storm: the client processes die at once, and the kernel closes
        # every socket they held.
        held.kill()
    seen["sockets_gone_s"] = wait_until(
        lambda: rig.vitals()["client_sockets"] == 0, SETTLE_TIMEOUT
    )
    seen["settled_s"] = wait_until(
        lambda: rig.subscriptions() == seen["baseline"], SETTLE_TIMEOUT, interval=0.5
    )
    seen["after_subs"] = rig.subscriptions()
    seen["after"] = rig.vitals()
    # A socket leaving while presence refreshes its entries may be put back
    # by the refresh; such an entry expires within the TTL, one never does.
    seen["presence_at_settle"] = rig.presence(live=True)
    seen["presence_gone_s"] = wait_until(
        lambda: rig.presence(live=True) == 0, PRESENCE_TTL + 10, interval=1
    )
    probe("rt_after")
    seen["ready"] = rig.ready()
    seen["killed"] = rig.log_count(KILLED)
    seen["cleanup_errors"] = rig.log_count("while cleaning-up channel")
    seen["tracebacks"] = dict(rig.cluster.tracebacks())
    return seen


def test_mass_disconnect_leaves_no_subscription_behind(tmp_path, figure):
    with one_daphne(tmp_path, django_database_url()) as rig:
        cookies = seed(rig.cluster.env, USERS, ROOMS)
        seen = storm(rig, cookies, SOCKETS)

    held, label = seen["held"], "mass disconnect"
    figure(f"{label}: sockets connected / failed", f"{held.connected} / {held.failed}")
    figure(f"{label}: seconds to open them", seen["opened_s"])
    for name in ("baseline", "holding_subs", "after_subs"):
        figure(f"{label}: channel layer subscriptions in Redis, {name}", seen[name])
    figure(
        f"{label}: seconds from the kill until Daphne held no client socket / "
        "until the subscriptions were back to baseline",
        f"{seen['sockets_gone_s']} / {seen['settled_s']}",
    )
    for name in ("rss_mb", "fds"):
        values = [seen[moment][name] for moment in ("before", "holding", "after")]
        figure(f"{label}: Daphne {name} before / holding / after", values)
    for name, moment in (
        ("rt_before", "before the sockets opened"),
        ("rt_holding", "while they were held"),
        ("rt_after", "after the storm"),
    ):
        figure(
            f"{label}: broadcast to a fresh client (ms) {moment}",
            summarize_ms(seen[name]),
        )
    figure(
        f"{label}: live presence entries at settle / seconds until none",
        f"{seen['presence_at_settle']} / {seen['presence_gone_s']}",
    )
    figure(
        f"{label}: consumers killed by --application-close-timeout (60 s) / "
        "channel clean-ups that failed",
        f"{seen['killed']} / {seen['cleanup_errors']}",
    )
    figure(f"{label}: tracebacks in Daphne's log", seen["tracebacks"])

    assert held.failed == 0, held.errors
    assert held.connected == SOCKETS
    assert seen["holding"]["client_sockets"] == SOCKETS
    assert seen["holding_subs"]["specific"] == SOCKETS
    assert seen["sockets_gone_s"] is not None
    assert seen["after_subs"] == seen["baseline"]
    assert seen["presence_gone_s"] is not None
    assert seen["ready"] == 200
    assert len(seen["rt_after"]) == len(seen["rt_before"]) > 0
    assert seen["killed"] == 0 and seen["tracebacks"] == {}


@pytest.mark.parametrize("dispatch_lever", ["on", "off"])
def test_consumers_killed_by_the_close_timeout_leave_nothing_behind(
    tmp_path, figure, dispatch_lever
):
    """The storm above on a smaller scale with a close timeout of 0: Daphne
    cancels every consumer still running at its next check (once a second),
    again at each check until it ends, as it would the consumers of 10,000
    sockets that took longer than the 60 s of deploy/start-ws.sh on a slower
    or busier machine. Each still unsubscribes its channel (with the consumer
    cleanup lever an unsubscribe, once started, finishes, where the next
    cancellation cut it short and channels_redis logged an ERROR) and leaves
    its groups and presence (ChatConsumer.disconnect shields that, and the
    lever runs the disconnect of a consumer killed before it dispatched the
    one Daphne sent); with the dispatch lever off too, under Channels' own
    await_many_dispatch."""
    # 4,000 disconnect handlers take the best part of a second here, so that
    # Daphne's check falls among them: thousands of kills each run.
    sockets = 4_000
    label = f"4,000 sockets, close timeout 0, dispatch lever {dispatch_lever}"
    with one_daphne(
        tmp_path,
        django_database_url(),
        DAPHNE_APPLICATION_CLOSE_TIMEOUT="0",
        LEVER_DISPATCH=dispatch_lever,
        # 40 sockets for each of its 100 users: the storm, not the per-user limit.
        CHAT_MAX_SOCKETS_PER_USER="0",
    ) as rig:
        cookies = seed(rig.cluster.env, USERS // 10, ROOMS)
        baseline = rig.subscriptions()
        load = Load(
            urls=[rig.url], protocol="chatroom", rooms=ROOMS,
            clients=sockets // ROOMS, rate=0, duration=0, drain=0, cookies=cookies,
            origin=rig.origin, processes=PROCESSES,
            connect_concurrency=CONNECT_CONCURRENCY,
        )  # fmt: skip
        with hold(load) as held:
            if held.connected != sockets:  # not the failure this test expects
                pytest.fail(f"{held.connected} connected: {held.errors}")
            held.kill()
        wait_until(lambda: rig.vitals()["client_sockets"] == 0, SETTLE_TIMEOUT)
        # The handlers of 4,000 sockets are done or killed within 5 s: what is
        # left after 8 s stays for good.
        settled = wait_until(lambda: rig.subscriptions() == baseline, 8, 0.5)
        leftover = rig.subscriptions()
        figure(f"{label}: subscriptions left in Redis", leftover)
        killed = rig.log_count(KILLED)
        failed_cleanups = rig.log_count("while cleaning-up channel")
        figure(
            f"{label}: 'was killed' log lines / failed channel clean-ups",
            f"{killed} / {failed_cleanups}",
        )
        # A killed consumer that never reached presence_leave keeps its entry
        # in the process's list, which is refreshed for ever.
        present = rig.presence(live=True)
        figure(f"{label}: live presence entries after the storm", present)
    assert killed > 0  # or the timeout was not what ended them
    assert settled is not None and leftover == baseline
    assert failed_cleanups == 0
    assert present == 0
