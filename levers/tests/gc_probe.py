"""
levers.server with Python's cyclic garbage collector switched off, so that
every reference cycle a connection leaves behind stays where a test can count
it:

    python -m levers.tests.gc_probe CENSUS_DIR [daphne options] APPLICATION

A test writes CENSUS_DIR/census.request; the probe runs a collection, counts
the connection objects it found unreachable (only a cycle kept them) and those
still alive, and writes them to CENSUS_DIR/census.json with the thresholds the
server set for the collector.
"""

import collections
import gc
import json
import sys
import threading
import time
from pathlib import Path

# A socket's connection, as Daphne, Twisted and autobahn build it.
CONNECTION_TYPES = {"WebSocketProtocol", "WebRequest", "HTTPChannel", "Server"}


def census() -> dict:
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collection finds, to count it
    try:
        gc.collect()
        unreachable = counted(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    gc.collect()  # and now free it, so that the next census counts only what is new
    return {
        "unreachable": unreachable,
        "alive": counted(gc.get_objects()),
        "gc_thresholds": gc.get_threshold(),
    }


def counted(objects) -> dict[str, int]:
    names = (type(thing).__qualname__ for thing in objects)
    return dict(collections.Counter(n for n in names if n in CONNECTION_TYPES))


def answer_requests(directory: Path) -> None:
    request, answer = directory / "census.request", directory / "census.json"
    while True:
        if request.exists():
            request.unlink()
            # In the reactor's thread, between two of its callbacks: no
            # connection closes between the census's two collections, so
            # none is freed by the second without being counted by the first.
            from twisted.internet import reactor, threads

            found = threads.blockingCallFromThread(reactor, census)
            partial = answer.with_suffix(".partial")
            partial.write_text(json.dumps(found))
            partial.rename(answer)
        time.sleep(0.05)


def main() -> None:
    directory = Path(sys.argv[1])
    gc.disable()
    threading.Thread(target=answer_requests, args=(directory,), daemon=True).start()
    from levers import server

    sys.argv = [sys.argv[0], *sys.argv[2:]]
    server.main()


if __name__ == "__main__":
    main()
