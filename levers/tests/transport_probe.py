"""
A Twisted server on the reactor Daphne runs (asyncio's, on uvloop), accepting
one connection with the transports of levers.transport (Twisted's own with
--twisted), for levers/tests/test_transport.py:

    python -m levers.tests.transport_probe PORT --chunks 100 --size 200 \
        [--every SECONDS]

It writes the chunks to the connection (chunk n: its number and a newline,
padded to `size` bytes), all in one turn of the loop, or one every SECONDS
(0: one a turn), closes the connection once they are written, stops, and
prints how many times a writer was registered with the loop, as JSON.
"""

import argparse
import asyncio
import json

import uvloop


def chunk(number: int, size: int) -> bytes:
    head = b"%d\n" % number
    return head + b"." * (size - len(head))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--chunks", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--every", type=float)
    parser.add_argument("--twisted", action="store_true")
    args = parser.parse_args()

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import protocol, reactor

    from levers import transport

    if not args.twisted:
        transport.install()
    registered = []
    add_writer = reactor.addWriter

    def counted_add_writer(writer):
        registered.append(writer)
        add_writer(writer)

    reactor.addWriter = counted_add_writer

    class Writer(protocol.Protocol):
        def connectionMade(self):
            if args.every is not None:
                self.write_from(0)
            else:
                for number in range(args.chunks):
                    self.transport.write(chunk(number, args.size))
                self.transport.loseConnection()

        def write_from(self, number):
            if number == args.chunks:
                self.transport.loseConnection()
                return
            self.transport.write(chunk(number, args.size))
            reactor.callLater(args.every, self.write_from, number + 1)

        def connectionLost(self, reason):
            reactor.stop()

    factory = protocol.Factory.forProtocol(Writer)
    reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    reactor.run()
    print(json.dumps({"writers_registered": len(registered)}), flush=True)


if __name__ == "__main__":
    main()
