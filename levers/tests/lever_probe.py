"""
An ASGI application that tells, as JSON over HTTP, which of the levers are in
effect in the process serving it, for levers/tests/test_server.py:

    python -m levers.server -b 127.0.0.1 -p PORT levers.tests.lever_probe:application
"""

import asyncio
import gc
import json

import channels.consumer
import channels.utils
from channels.consumer import AsyncConsumer
from twisted.internet import tcp


def in_effect() -> dict[str, bool]:
    from daphne.server import Server

    [server] = [thing for thing in gc.get_objects() if isinstance(thing, Server)]
    mixins = {cls.__name__ for cls in type(server).__mro__}
    return {
        "uvloop": type(asyncio.get_running_loop()).__module__.startswith("uvloop"),
        "write_at_once": tcp.Port.transport is not tcp.Server,
        "dispatch": channels.consumer.await_many_dispatch
        is not channels.utils.await_many_dispatch,
        "skip_db_hop": channels.consumer.aclose_old_connections.__module__
        != "channels.db",
        "consumer_cleanup": AsyncConsumer.__call__.__module__ != "channels.consumer",
        "memory": gc.get_threshold()[2] != 10 and "FreedConnections" in mixins,
        "drop_late_replies": "DropLateReplies" in mixins,
        "clean_stop": "CleanStop" in mixins,
        "send_backlog": "BoundedSendBacklog" in mixins,
    }


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(in_effect()).encode()})
