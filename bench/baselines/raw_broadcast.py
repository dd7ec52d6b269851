"""
The ceiling: a plain `websockets` server that relays every text frame to every
socket of its room, the sender included. No Django, no Channels, no Redis.

    python -m bench.baselines.raw_broadcast --port 9000
"""

import argparse
import asyncio

import websockets

rooms: dict[str, set] = {}


async def relay(socket) -> None:
    members = rooms.setdefault(socket.request.path, set())
    members.add(socket)
    try:
        async for frame in socket:
            websockets.broadcast(members, frame)
    finally:
        members.discard(socket)


async def serve(host: str, port: int) -> None:
    async with websockets.serve(relay, host, port, max_size=2**16, ping_interval=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))
