"""
The reliability promises when Redis or PostgreSQL go away, proved on real
processes: nginx with the production locations in front of gunicorn and two
Daphne processes, with a Redis and, for the database outages, a PostgreSQL
cluster of the test's own, so that stopping them disturbs nothing else.

The database is the source of truth and broadcasts are at most once: so while
Redis is away messages are still stored, and reach everyone (live or by
resume) once it is back; while PostgreSQL is away sends fail visibly (error
frame `unavailable`, HTTP 503) and nothing acknowledged is lost; and both
recover without a server restart:

  - Redis restarted, and Redis stopped for 30 s;
  - PostgreSQL restarted, busy and idle; and stopped for longer than a call
    waits for a pooled connection.

Every test records what it measured with the `figure` fixture.
"""

import asyncio
import time

import pytest

from .backing import PostgresCluster
from .cluster import (
    Cluster,
    django_database_url,
    migrate,
    running_cluster,
    server_env,
)
from .crowd import Crowd, chatting, eventually
from .reckoning import (
    BrokenPromise,
    answered_by,
    assert_everyone_holds_what_was_stored,
    error_codes,
    longest_wait_for_an_answer,
    outcomes,
    record_tally,
    tally,
    unavailable_after,
    unavailable_between,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

REDIS_RECOVERY_DEADLINE = 30  # seconds after Redis is back, the issue's
DB_POOL_TIMEOUT = 2  # seconds a call waits for a pooled connection (start-ws.sh)
POSTGRES_OUTAGE = 5  # seconds: less than DB_POOL_TIMEOUT
LONG_POSTGRES_OUTAGE = 20  # seconds: twice as long


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory):
    """A PostgreSQL cluster of our own, migrated: restarting it disturbs nobody."""
    postgres = PostgresCluster(tmp_path_factory.mktemp("postgres"))
    try:
        postgres.init()
        postgres.start()
        postgres.create_database("chatroom")
        migrate(server_env(postgres.url("chatroom"), ""))
        yield postgres
    finally:
        postgres.remove()


# --- Redis -------------------------------------------------------------------


@pytest.mark.parametrize("outage", [0, 30], ids=["restarted", "stopped-30s"])
def test_redis_outage_delays_delivery_and_loses_nothing(tmp_path, figure, outage):
    with running_cluster(tmp_path, django_database_url()) as cluster:
        asyncio.run(redis_outage(cluster, figure, outage))


async def redis_outage(cluster: Cluster, figure, outage: float) -> None:
    async with chatting(cluster, "redis", 20, per_second=4) as (crowd, http):
        pids = cluster.pids()
        polls_before = http.gets.copy()
        down_at = time.monotonic()
        await asyncio.to_thread(cluster.redis.stop)
        await asyncio.sleep(outage)
        await asyncio.to_thread(cluster.redis.start)
        back_at = time.monotonic()
        polls_during = http.gets - polls_before
        stored_by_then = await asyncio.to_thread(cluster.room_messages, crowd.slug)
        live_again = await eventually(
            lambda: all(c.live_since(back_at) for c in crowd.clients),
            REDIS_RECOVERY_DEADLINE,
            lambda: [c.name for c in crowd.clients if not c.live_since(back_at)],
        )
        # What was stored while Redis was away reaches everyone by resume.
        filled = await eventually(
            lambda: all(c.holds(m.id for m in stored_by_then) for c in crowd.clients),
            REDIS_RECOVERY_DEADLINE - (time.monotonic() - back_at),
            lambda: "gaps still open",
        )
        await crowd.stop_load()
        await http.stop()
        stored = await crowd.settle()
    result = tally(crowd.clients, stored, http.posted, f"{crowd.slug}-poster")
    during = outcomes(crowd.clients, stored, down_at, back_at)
    label = f"Redis stopped {outage} s" if outage else "Redis restarted"
    figure(f"{label}: seconds Redis was down", round(back_at - down_at, 2))
    figure(f"{label}: server PIDs unchanged", pids == cluster.pids())
    figure(f"{label}: history polls during the outage by status", dict(polls_during))
    figure(f"{label}: socket sends during the outage by outcome", during)
    figure(
        f"{label}: seconds after Redis was back until live delivery reached "
        "every client / every gap was filled",
        f"{live_again:.2f} / {live_again + filled:.2f}",
    )
    record_tally(figure, label, result, crowd.clients)
    figure(f"{label}: tracebacks in the server logs", dict(cluster.tracebacks()))
    assert_everyone_holds_what_was_stored(result, crowd.clients)
    assert pids == cluster.pids()
    assert all(cluster.running().values()), cluster.running()
    assert set(polls_during) <= {200}, polls_during
    assert during["neither"] == 0, during


# --- PostgreSQL --------------------------------------------------------------


def test_postgresql_restart_fails_sends_visibly_and_recovers(
    own_postgres, tmp_path, figure
):
    with running_cluster(tmp_path, own_postgres.url("chatroom")) as cluster:
        asyncio.run(postgres_restart(cluster, own_postgres, figure))


async def postgres_restart(cluster: Cluster, postgres, figure) -> None:
    async with chatting(cluster, "postgres", 10, per_second=2) as (crowd, http):
        pids = cluster.pids()
        posts_before, polls_before = http.posts.copy(), http.gets.copy()
        down_at = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(POSTGRES_OUTAGE)
        await asyncio.to_thread(postgres.start)
        back_at = time.monotonic()
        posts_during, polls_during = http.posts - posts_before, http.gets - polls_before
        await asyncio.sleep(3)

        # Again while no socket sends anything: the pooled connections of each
        # Daphne break unnoticed, and the first use of each fails once.
        await crowd.stop_load()
        await eventually(
            lambda: not any(c.pending for c in crowd.clients),
            30,
            lambda: {c.name: len(c.pending) for c in crowd.clients},
        )
        pooled = sum(cluster.connections_to(d, postgres.port) for d in cluster.daphnes)
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
        idle_back_at = time.monotonic()
        crowd.start_load(per_second=2)
        await asyncio.sleep(4)
        await crowd.stop_load()
        await http.stop()
        stored = await crowd.settle()
    result = tally(crowd.clients, stored, http.posted, f"{crowd.slug}-poster")
    during = outcomes(crowd.clients, stored, down_at, back_at)
    waited = longest_wait_for_an_answer(crowd.clients, down_at, back_at)
    failed_once = unavailable_after(crowd.clients, idle_back_at)
    statuses = http.client.statuses
    label = f"PostgreSQL stopped {POSTGRES_OUTAGE} s"
    figure(f"{label}: server PIDs unchanged", pids == cluster.pids())
    figure(
        f"{label}: socket error frames, this outage and the next",
        error_codes(crowd.clients),
    )
    figure(f"{label}: socket sends during the outage by outcome", during)
    figure(f"{label}: longest wait of those for an answer (s)", round(waited, 2))
    figure(
        f"{label}: HTTP posts / history polls during the outage by status",
        f"{dict(posts_during)} / {dict(polls_during)}",
    )
    figure(
        "PostgreSQL restarted while idle: pooled connections of the Daphnes / "
        "sends that failed once after it",
        f"{pooled} / {failed_once}",
    )
    record_tally(figure, label, result, crowd.clients)
    figure(f"{label}: tracebacks in the server logs", dict(cluster.tracebacks()))
    assert_everyone_holds_what_was_stored(result, crowd.clients)
    assert pids == cluster.pids()
    assert all(cluster.running().values()), cluster.running()
    assert during["neither"] == 0, during
    # The sends that met a pooled connection the shutdown had cut.
    assert unavailable_between(crowd.clients, down_at, back_at) > 0
    assert posts_during[503] > 0 and polls_during[503] > 0
    assert {status for status in statuses if status >= 500} == {503}, statuses
    assert http.client.failures == {}
    # Each broken pooled connection fails one send, and chat.outages refuses
    # the sends of the moment after it; all go again (with the same client_id)
    # and are stored, as checked above.
    assert failed_once > 0


def test_sends_during_a_long_database_outage_are_refused_while_it_lasts(
    own_postgres, tmp_path, figure
):
    url = own_postgres.url("chatroom")
    with running_cluster(tmp_path, url, daphnes=1) as cluster:
        asyncio.run(long_postgres_outage(cluster, own_postgres, figure))


async def long_postgres_outage(cluster: Cluster, postgres, figure) -> None:
    crowd = Crowd(cluster, "outage", 6)
    try:
        await crowd.enter()
        crowd.start_load(per_second=1)
        await asyncio.sleep(2)
        down_at = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(LONG_POSTGRES_OUTAGE)
        await asyncio.to_thread(postgres.start)
        back_at = time.monotonic()
        await crowd.stop_load()
        stored = await crowd.settle()
    finally:
        await crowd.leave()
    result = tally(crowd.clients, stored)
    # The sends that had DB_POOL_TIMEOUT and a second more to fail before the
    # database was back.
    answered = answered_by(
        crowd.clients, down_at, back_at - DB_POOL_TIMEOUT - 1, back_at
    )
    label = f"PostgreSQL stopped {LONG_POSTGRES_OUTAGE} s"
    waited = longest_wait_for_an_answer(crowd.clients, down_at, back_at)
    figure(
        f"{label}: socket sends that had {DB_POOL_TIMEOUT + 1} s to fail before it"
        " ended / answered while it lasted",
        f"{len(answered)} / {sum(answered)}",
    )
    figure(
        f"{label}: longest wait of a send during it for an answer (s)",
        round(waited, 2),
    )
    record_tally(figure, label, result, crowd.clients)
    assert_everyone_holds_what_was_stored(result, crowd.clients)
    # The promise: while the database is down, a send fails visibly.
    if not all(answered):
        raise BrokenPromise(
            f"{answered.count(False)} of {len(answered)} sends got no answer "
            f"during a {LONG_POSTGRES_OUTAGE} s database outage"
        )
