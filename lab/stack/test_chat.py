"""
Chat through nginx across three Daphne replicas: every client gets every
message whichever replica holds it, HTTP posts (gunicorn) reach the sockets,
oversized messages are refused before the application, and a stopped or
killed replica costs its clients a reconnect and no message.
"""

import asyncio
import json
import subprocess
import time

import pytest
import websockets

from .actions import (
    busiest_ws_replica,
    chatting,
    connects_per_replica,
    create_room,
    database_connections,
    kill_daphne,
    open_sockets,
    post_message,
    stored_ids,
    wait_for_stored,
    ws_url,
)


async def test_clients_on_different_daphne_replicas_chat(stack, people):
    async with chatting(stack, people, count=9) as (slug, sockets):
        per_replica = connects_per_replica(stack, slug, total=9)
        print(f"\nsockets per ws replica: {per_replica}")
        assert sum(per_replica.values()) == 9
        # least_conn spreads them over every replica.
        assert len(per_replica) == 3 and all(per_replica.values()), per_replica

        for s in sockets:
            await s.send(f"hello from {s.name}")
        ids = await wait_for_stored(people[0], slug, count=9)
        for s in sockets:
            await s.wait_for(ids, timeout=15)
            assert sorted(s.ids) == ids
            assert {s.bodies[i] for i in ids} == {
                f"hello from {x.name}" for x in sockets
            }

        # Daphne closes its database connection after each use; gunicorn's
        # workers (2 replicas x 2 workers here) keep one each.
        connections = database_connections(stack)
        print(f"database connections with 9 sockets open: {connections}")
        assert connections <= 2 * 2 + 3 * 2, connections


async def test_message_posted_to_gunicorn_arrives_on_daphne_sockets(stack, people):
    async with chatting(stack, people, count=3) as (slug, sockets):
        message_id = post_message(stack, people[1], slug, "sent over HTTP")
        for s in sockets:
            await s.wait_for([message_id], timeout=10)
            assert s.bodies[message_id] == "sent over HTTP"


async def test_stopped_daphne_replica_closes_its_sockets_cleanly(stack, people):
    async with chatting(stack, people, count=6) as (slug, sockets):
        victim, held = busiest_ws_replica(stack, slug, total=6)
        try:
            # What `docker compose stop` and a rolling upgrade do: SIGTERM,
            # then the stop grace period.
            await asyncio.to_thread(
                subprocess.run,
                ["docker", "stop", "--time", "30", victim["Id"]],
                capture_output=True, check=True,
            )  # fmt: skip
            deadline = time.monotonic() + 10  # the closes travel on through nginx
            while sum(1 for s in sockets if s.close_codes) < held:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            dropped = [s for s in sockets if s.close_codes]
            print(
                f"\nstopped {victim['Name'].lstrip('/')} holding {held} sockets; "
                f"their close codes: {[s.close_codes for s in dropped]}"
            )
            assert len(dropped) == held
            assert all(s.close_codes[0] == 1001 for s in dropped)

            await sockets[0].send("after the stop")
            ids = await wait_for_stored(people[0], slug, count=1)
            for s in sockets:
                await s.wait_for(ids, timeout=20)
        finally:
            subprocess.run(["docker", "start", victim["Id"]], capture_output=True)
            stack.wait_healthy(timeout=90)


async def test_killed_daphne_process_clients_reconnect_and_resume(stack, people):
    async with chatting(stack, people, count=9) as (slug, sockets):
        victim, held = busiest_ws_replica(stack, slug, total=9)
        restarts_before = victim["RestartCount"]

        kill_daphne(victim)
        killed_at = time.monotonic()
        # While the victim's clients are away, others post over HTTP...
        posted = [
            post_message(stack, people[n % 3], slug, f"during outage {n}")
            for n in range(5)
        ]
        # ...and the sockets keep talking.
        for s in sockets:
            await s.send(f"after the kill from {s.name}")

        ids = await wait_for_stored(people[0], slug, count=5 + 9)
        for s in sockets:
            await s.wait_for(ids, timeout=30)
        dropped = [s for s in sockets if s.disconnects]
        print(
            f"\nkilled {victim['Name'].lstrip('/')} holding {held} sockets; "
            f"{len(dropped)} dropped, reconnected after "
            f"{[round(t, 2) for s in dropped for t in s.reconnected_after]} s; "
            f"sends repeated after reconnecting: {sum(s.resent for s in sockets)}; "
            f"wire duplicates dropped by clients: {sum(s.duplicates for s in sockets)}"
        )
        assert len(dropped) == held
        for s in sockets:
            assert sorted(s.ids) == ids, f"{s.name} lost or gained messages"
            assert len(s.ids) == len(set(s.ids))
        for s in dropped:
            assert s.reconnected_after and max(s.reconnected_after) < 10
        assert set(posted) <= set(ids)

        # The restart policy brings the replica back, healthy.
        deadline = killed_at + 90
        while time.monotonic() < deadline:
            [current] = [c for c in stack.containers("ws") if c["Id"] == victim["Id"]]
            if (
                current["RestartCount"] > restarts_before
                and current["State"].get("Health", {}).get("Status") == "healthy"
            ):
                break
            await asyncio.sleep(1)
        else:
            pytest.fail(f"{victim['Name'].lstrip('/')} did not come back healthy")


async def test_oversized_message_closes_the_socket_before_the_app(stack, people):
    slug = create_room(people[0])
    session = people[0]
    async with websockets.connect(
        ws_url(stack, slug),
        ssl=session.ssl,
        origin=session.origin,
        additional_headers={"Cookie": session.cookie_header()},
        max_size=None,
    ) as oversized:
        assert json.loads(await oversized.recv())["type"] == "hello"
        body = "x" * 70_000  # over start-ws.sh's 65,536-byte message limit
        frame = {"type": "message", "body": body, "client_id": "oversized"}
        await oversized.send(json.dumps(frame))
        # Daphne fails the connection. Its close frame (1009) is usually lost
        # to the TCP reset, so clients see an abnormal closure; either way the
        # socket is gone and nothing reached the application.
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(oversized.recv(), 10)
    assert stored_ids(session, slug) == []

    # The replica that dropped it serves the next socket as usual.
    [chat] = await open_sockets(stack, people, slug, count=1)
    try:
        await chat.send("after the oversized one")
        [stored] = await wait_for_stored(session, slug, count=1)
        await chat.wait_for([stored], timeout=10)
    finally:
        await chat.stop()
