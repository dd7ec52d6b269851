"""
1,000 WebSocket clients in one room through nginx (the production locations,
deploy/nginx/snippets/chatroom-locations.conf, in front of two Daphne
processes and a gunicorn, with a Redis of the test's own: cluster.py): every
handshake succeeds, and every client gets every broadcast. The fan-out latency
of a few broadcasts is a figure only.
"""

from collections import Counter

import pytest

from bench.loadgen import Load, run

from .cluster import django_database_url, running_cluster
from .load_rig import open_files_limit, seed

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CLIENTS = 1_000
USERS = 100  # ten sockets each, as people with several tabs
RATE = 2  # broadcasts per second, each from another user (the rate limit holds)
SECONDS = 5


def test_a_thousand_clients_in_one_room_through_nginx(tmp_path, figure):
    open_files_limit()
    with running_cluster(tmp_path, django_database_url(), daphnes=2) as cluster:
        cookies = seed(cluster.env, USERS, rooms=1)
        load = Load(
            urls=[f"ws://127.0.0.1:{cluster.nginx.port}/ws/chat/{{room}}/"],
            protocol="chatroom", rooms=1, clients=CLIENTS, rate=RATE,
            duration=SECONDS, drain=3, cookies=cookies, origin=cluster.origin,
            processes=4, connect_concurrency=12,
        )  # fmt: skip
        summary = run(load).summary()
        sockets = [r for r in cluster.nginx.requests() if r.uri.startswith("/ws/")]
        tracebacks = dict(cluster.tracebacks())

    per_daphne = Counter(r.upstreams[-1] for r in sockets if r.status == 101)
    label = "1,000 clients through nginx"
    figure(
        f"{label}: handshakes succeeded / failed",
        f"{summary['connected']} / {summary['failed']}",
    )
    figure(f"{label}: handshake p99 (ms)", summary["handshake_p99_ms"])
    figure(
        f"{label}: sockets per Daphne (nginx least_conn)", sorted(per_daphne.values())
    )
    figure(
        f"{label}: broadcasts / deliveries expected / delivered / lost",
        "{sent} / {expected} / {delivered} / {lost}".format(**summary),
    )
    figure(
        f"{label}: fan-out latency p50 / p90 / p99 / max (ms)",
        "{p50_ms} / {p90_ms} / {p99_ms} / {max_ms}".format(**summary),
    )
    figure(
        f"{label}: nginx statuses of the socket requests",
        dict(Counter(r.status for r in sockets)),
    )
    figure(f"{label}: tracebacks in the servers' logs", tracebacks)

    assert summary["failed"] == 0, summary["errors"]
    assert summary["connected"] == CLIENTS
    assert {r.status for r in sockets} == {101}
    assert summary["sent"] > 0
    assert summary["lost"] == 0 and summary["duplicated"] == 0, summary
