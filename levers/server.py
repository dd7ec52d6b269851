"""
Daphne's command line with the levers that the environment switches on, for
deploy/start-ws.sh (production, and `make run`):

    python -m levers.server [daphne options] project.asgi:application

The options are Daphne's own. docs/levers.md lists the levers and their
switches; with none switched on this runs Daphne as `daphne` does.
"""

import asyncio
import logging
import sys

from . import is_on, switched_on

logger = logging.getLogger(__name__)


def main() -> None:
    levers = switched_on()
    if "uvloop" in levers:
        # Daphne makes its event loop when daphne.server is imported, below.
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    from . import backlog, cleanup, db_hop, dispatch, memory, replies, stop, transport

    installs = {
        "write_at_once": transport.install,
        "dispatch": dispatch.install,
        "skip_db_hop": db_hop.install,
        "consumer_cleanup": cleanup.install,
        "memory": memory.install,
    }
    for lever in levers:
        if lever in installs:
            installs[lever]()
    server_mixins = {
        "memory": memory.FreedConnections,
        "drop_late_replies": replies.DropLateReplies,
        "clean_stop": stop.CleanStop,
        "send_backlog": backlog.BoundedSendBacklog,
    }
    mixins = tuple(server_mixins[lever] for lever in levers if lever in server_mixins)

    class LeveredCommandLineInterface(CommandLineInterface):
        server_class = type("Server", (*mixins, Server), {})

    print(f"levers on: {', '.join(levers) or 'none'}", file=sys.stderr, flush=True)
    LeveredCommandLineInterface().run(sys.argv[1:])
    if is_on("clean_stop"):
        stop.exit_now()


if __name__ == "__main__":
    main()
