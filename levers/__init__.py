"""
Levers: switchable patches to the ASGI server stack the project runs on
(Daphne, Twisted, autobahn, Channels, channels_redis), kept out of the app so
that chat/ reads the way the Channels documentation does.

Every lever is off unless its environment variable says "on".
`python -m levers.server`, Daphne's command line with the levers applied, is
how deploy/start-ws.sh (and so `make run`) starts Daphne, and the script
switches on the levers that pay. Plain `daphne project.asgi:application` runs
with none. What each lever does, what it gained, the upstream issue it works
around and what to re-check when that dependency is upgraded: docs/levers.md.
"""

import os

# Lever name -> the environment variable that switches it on.
SWITCHES = {
    # Daphne's asyncio event loop is uvloop's.
    "uvloop": "LEVER_UVLOOP",
    # Twisted's TCP and UNIX transports send a write at once (levers.transport).
    "write_at_once": "LEVER_WRITE_AT_ONCE",
    # A consumer takes its messages with one task per source (levers.dispatch).
    "dispatch": "LEVER_DISPATCH",
    # No thread hop to close old database connections before each event
    # (levers.db_hop).
    "skip_db_hop": "LEVER_SKIP_DB_HOP",
    # A consumer that ends, or that Daphne kills, unsubscribes its channel and
    # runs its disconnect (levers.cleanup).
    "consumer_cleanup": "LEVER_CONSUMER_CLEANUP",
    # Closed connections freed without the cyclic garbage collector, rare full
    # collections, freed memory handed back (levers.memory).
    "memory": "LEVER_MEMORY",
    # Replies to a socket autobahn has already closed are dropped (levers.replies).
    "drop_late_replies": "LEVER_DROP_LATE_REPLIES",
    # On SIGTERM every socket is closed with 1001 and given time (levers.stop).
    "clean_stop": "LEVER_CLEAN_STOP",
    # What waits to be sent to one socket is bounded (levers.backlog).
    "send_backlog": "LEVER_SEND_BACKLOG",
}

ON, OFF = ("on", "1", "true", "yes"), ("off", "0", "false", "no", "")


def is_on(lever: str) -> bool:
    """Whether the lever's environment variable switches it on."""
    name = SWITCHES[lever]
    value = os.environ.get(name, "").strip().lower()
    if value in ON:
        return True
    if value in OFF:
        return False
    raise SystemExit(f"{name} must be on or off, not {value!r} (docs/levers.md)")


def switched_on() -> list[str]:
    return [lever for lever in SWITCHES if is_on(lever)]
